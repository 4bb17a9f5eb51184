"""The score parser, on the real LLM answers in ../shared/data/annotations/ and on the shapes they take."""

import csv
import gzip
import io
import json

import pytest

from winnow.classifiers.parsing import aggregate_scores, parse_score


@pytest.mark.parametrize(
    "answer, score",
    [
        ("The extract is a lesson plan.\n\nEducational score: 4", 4),
        ("Educational score:  3", 3),  # the prompt's own double space
        ("**Educational score:** 2", 2),
        ("**Educational score: 5**", 5),
        ("Educational score: 3/5", 3),
        ("Educational score: 1 out of 5", 1),
        ("Educational score: 2 points.", 2),
        ("Educational score: 2.", 2),
        ("Educational score:1", 1),
        ("The educational score is: 0.", 0),
        ("Educational score: '1'.", 1),
        ("Educational score: 4.0", 4),
        ("First guess. Educational score: 2\nOn reflection it deserves more.\nEducational score: 3", 3),
    ],
)
def test_score_statements_that_are_read(answer, score):
    assert parse_score(answer).score == score


@pytest.mark.parametrize(
    "answer, reason",
    [
        ("", "empty answer"),
        ("The page is a shop front with no educational content. Score: 0", "no 'Educational score: N' statement"),
        ("I would give it 3 points.", "no 'Educational score: N' statement"),
        ("Educational score: 7", "score 7 outside 0-5"),
        ("Educational score: 2.5", "non-integer score 2.5"),
        ("Educational score: **2 (lowered to 0)**", "ambiguous score statement"),
    ],
)
def test_answers_that_are_unparseable_say_why(answer, reason):
    parsed = parse_score(answer)
    assert parsed.score is None and not parsed.ok
    assert parsed.reason.startswith(reason)


# The 5,000 Llama-3.1-70B answers carry their producer's own status. Our parser agrees on every answer except
# these 48, all recorded `error_faulty_score` by a stricter parser (exactly "Educational score: N") and read by
# ours because the model stated the score in another wording; the expected score is the one the model stated.
CASE = "'educational score' / 'Educational Score' in another case; "
IS = "'score is N' or 'score is: N' instead of 'score: N'; "
SPACE_COLON = "'Educational score : N' with a space before the colon; "
QUOTED = "the number in quotes; "
DISAGREEMENTS = {
    ("1400fdb4-5caa-405b-bdf3-0f962eca51f6", 0): (2, IS),
    ("b9a0c779-cf54-4d50-af51-5baa2ae84ada", 0): (2, CASE),
    ("924e9f35-5a0b-4e39-96a5-9c328f9da610", 2): (1, CASE + QUOTED),
    ("7011137a-425b-4532-9ae9-2beaf0393e30", 2): (0, IS),
    ("fbb71dd2-f6ea-4785-8a7c-05855078e8da", 1): (1, CASE),
    ("3731bad3-d121-41c4-8f8c-6ad37f197c4f", 3): (2, CASE + IS),
    ("997cf778-9164-471f-80b0-0a5fc29622f3", 2): (1, SPACE_COLON),
    ("b12afdcd-3e7f-4a4b-97f4-9bed88483130", 2): (0, IS),
    ("5b88edc5-ae75-422a-9a35-8f596247b557", 1): (2, CASE + IS),
    ("2d9bc69f-4e23-410e-89f6-05e2183c874e", 1): (0, CASE),
    ("2e4c161a-0c6a-45dd-811a-7fb319b82b3b", 2): (1, IS),
    ("608405c9-6a2e-4be4-9bdb-e09d976e34a0", 3): (1, IS),
    ("4fbbc2be-ab49-4c71-829d-249c97ec6d7e", 0): (0, CASE),
    ("1dc3a8e0-7018-4e23-983f-c0929241e678", 0): (1, CASE + IS),
    ("4b72f50c-bf9c-4cdc-8e6e-a03596746d31", 4): (1, CASE),
    ("e5e44f62-0904-4c13-9ab9-1554640278b3", 3): (1, CASE + IS),
    ("729ddb0a-d00e-467e-9d02-a4ecd2478941", 2): (1, CASE + IS),
    ("0a9960f8-1dfe-4047-850c-338214563f29", 4): (1, CASE + IS),
    ("ae328e1c-cf64-40fb-a6cc-6b36daae08d0", 3): (3, CASE),
    ("9278c9ec-a36f-4ad1-8337-72417e0c1482", 3): (0, CASE),
    ("c3e4ea6f-44b7-4a13-bc1a-8353bd9ac1bc", 4): (0, CASE),
    ("0ec3c1b7-e37b-4a07-9fe1-87ea1fc0d8d6", 0): (0, CASE),
    ("9a92706d-fd5b-45c3-b453-1021e11b2e4b", 3): (1, CASE + IS),
    ("ec2dcd38-0763-4194-beaa-5923c12bb148", 0): (1, IS),
    ("4669ea36-9f80-4aac-a4a0-c99ffe6bac40", 0): (1, CASE),
    ("542031e3-1e81-4726-a986-96c7e4b2c8d3", 1): (1, IS),
    ("d7947ec5-ae93-4dba-966d-7eda02a966e3", 4): (4, CASE),
    ("65601aa4-88f2-40be-b8a3-90239ad5ea00", 3): (0, CASE),
    ("7aa5c317-7656-4ac2-863f-89b4ba16e6fe", 1): (1, IS),
    ("598b09f4-06ee-4815-8adf-827f5ab86991", 0): (0, IS),
    ("b52abb5f-6929-4f07-b23c-51c14689795c", 4): (0, CASE),
    ("ef195b42-7f14-45bb-96cd-d38433769b8f", 0): (1, CASE + IS),
    ("d54c3925-e46b-4953-a431-83fc3d6bac6f", 3): (3, CASE + IS),
    ("eb305523-f247-4ea3-8359-0ceec724e9c8", 1): (1, CASE + IS),
    ("be2f5f59-3ee9-4ba2-895a-96d75696321c", 3): (1, CASE),
    ("e7b3bcea-158f-4d5f-b986-e5ada08dda73", 3): (2, CASE + IS),
    ("68a5832e-7b86-4ff9-bf6e-f5920b91a64f", 0): (2, CASE + IS),
    ("aba474d4-b9f0-45ef-ab92-42a34b8256f2", 1): (0, CASE),
    ("4959bb93-2010-4e44-880f-6a927f48b376", 2): (1, CASE + IS),
    ("b2d4a9c5-a615-42d9-b087-60f4d144fe19", 0): (1, CASE + IS),
    ("3db349de-67ac-4882-a2ac-8dffb0eb545f", 4): (1, IS),
    ("0ae11aeb-4e98-4479-95c5-234484296428", 2): (0, IS),
    ("7221f27c-2a9a-4831-9692-04acadde989e", 4): (1, CASE),
    ("e2e5ede9-2271-4503-82f1-da0c687c35fb", 4): (1, CASE + IS),
    ("bc2091e3-f852-4ca1-a9a4-f2ac4592a569", 0): (2, CASE),
    ("9805adce-6c0d-4abe-8eb2-c40ee88a25ad", 3): (1, CASE + IS),
    ("b0c9296f-2ab1-4b5c-99fe-574d9b28eb28", 4): (2, CASE),
    ("c85e9686-e14d-4863-a90c-d0c1bc039552", 1): (1, IS),
}


def _llama31_answers(shared_data):
    path = shared_data / "annotations" / "llama31-multilingual" / "cc_merged_annotations.jsonl.gz"
    with gzip.open(path, "rt") as f:
        return [json.loads(line) for line in f]


def test_parser_agrees_with_the_recorded_status_of_5000_llama31_answers(shared_data):
    agreed, disagreed = 0, {}
    for doc in _llama31_answers(shared_data):
        key = doc["document_id"][len("<urn:uuid:") : -1]
        for i, (answer, recorded, status) in enumerate(
            zip(doc["explanations"], doc["scores"], doc["document_processing_status"])
        ):
            parsed = parse_score(answer)
            if status == "success" and parsed.score == recorded:
                agreed += 1
            elif status == "error_faulty_score" and parsed.score is None:
                agreed += 1
            else:
                disagreed[(key, i)] = (parsed.score, status)
    assert agreed + len(disagreed) == 5000
    assert set(disagreed) == set(DISAGREEMENTS)
    for key, (score, status) in disagreed.items():
        assert status == "error_faulty_score" and score == DISAGREEMENTS[key][0], key


def test_parser_reads_every_llama33_reasoning_answer(shared_data):
    path = shared_data / "annotations" / "llama33-reasoning" / "training_data.csv.gz"
    with gzip.open(path, "rb") as f:
        rows = list(csv.DictReader(io.TextIOWrapper(f, encoding="utf-8")))
    assert len(rows) == 150
    assert [parse_score(r["reasoning"]).score for r in rows] == [int(r["score"]) for r in rows]
    assert sum(parse_score(r["reasoning"]).score == 5 for r in rows) == 18


def test_jury_of_five_llama31_samples(shared_data):
    """Aggregating the 5 sampled answers per document: each rule stays inside the jury's range, and a unanimous
    jury gives its verdict under every rule."""
    unanimous = split = 0
    for doc in _llama31_answers(shared_data):
        scores = [parse_score(a).score for a in doc["explanations"]]
        valid = [s for s in scores if s is not None]
        if not valid:
            assert aggregate_scores(scores, "mean") is None
            continue
        results = {how: aggregate_scores(scores, how) for how in ("mean", "median", "majority")}
        assert all(min(valid) <= r <= max(valid) for r in results.values())
        assert results["majority"] in valid
        if len(set(valid)) == 1:
            unanimous += 1
            assert set(results.values()) == {float(valid[0])}
        else:
            split += 1
    assert unanimous > 100 and split > 100  # both situations are well represented in the real data


def test_majority_ties_go_to_the_lower_score_and_unparseable_samples_are_left_out():
    assert aggregate_scores([3, 2, None, 3, 2], "majority") == 2.0
    assert aggregate_scores([None, 4, None], "mean") == 4.0
    assert aggregate_scores([1, 2, 4], "median") == 2.0
    assert aggregate_scores([None, None], "median") is None
    with pytest.raises(ValueError, match="majority"):
        aggregate_scores([1], "mode")
