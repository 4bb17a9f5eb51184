"""Train one fastText model in a fresh process.

    python -m winnow.classifiers.fasttext_fit TRAIN.txt MODEL.bin 'JSON args'

Why a process of its own: with fasttext-numpy2-wheel 0.9.2, a second `train_supervised` call in the same
process starts from corrupted state (measured here: the same file and arguments give training accuracy
0.28 on the first call, then collapsed one-hot predictions or "Encountered NaN" on the third). The first
call in a fresh process is deterministic (thread=1, fixed seed), so every model is trained that way.
"""

import json
import sys


def main(argv: list[str]) -> int:
    import fasttext

    train_file, model_file, arguments = argv[0], argv[1], json.loads(argv[2])
    lr = arguments.pop("lr")
    for _ in range(4):
        try:
            model = fasttext.train_supervised(input=train_file, thread=1, verbose=0, lr=lr, **arguments)
            model.save_model(model_file)
            return 0
        except RuntimeError as e:  # "Encountered NaN": oversampled rare classes can blow up SGD at a high lr
            if "NaN" not in str(e):
                raise
            lr /= 2
    print(f"fastText diverged (NaN) even at lr {lr}; lower classifier.fasttext.lr", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
