"""The presets build the model sizes they claim (the two large ones on the meta device: no memory used)."""

import pytest
import torch

from winnow.proxy.model import GPT2_VOCAB_SIZE, PRESETS, build_model, count_parameters, preset


def test_cpu_tiny_has_about_one_million_non_embedding_parameters():
    cfg = preset("cpu-tiny")
    model = build_model(cfg.with_vocab(cfg.corpus_vocab_size))
    counts = count_parameters(model)
    assert 1.0e6 <= counts["non_embedding"] <= 1.1e6  # 4 × (4·128² + 3·128·512 + 2·128) + 128 = 1,049,728
    assert counts["embedding"] == 8192 * 128  # tied: counted once
    logits = model(input_ids=torch.zeros(2, cfg.context_length, dtype=torch.long)).logits
    assert logits.shape == (2, cfg.context_length, 8192)


def test_gpu_small_is_the_150m_datadecide_scale():
    counts = count_parameters(build_model(preset("gpu-small"), device="meta"))
    assert 145e6 <= counts["total"] <= 155e6
    assert counts["embedding"] == GPT2_VOCAB_SIZE * 768


def test_fineweb_preset_is_the_fineweb_ablation_model():
    cfg = preset("fineweb-1.8b")
    model = build_model(cfg, device="meta")
    c = model.config
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size, c.num_attention_heads) == (24, 2048, 8192, 32)
    assert c.max_position_embeddings == 2048 and c.tie_word_embeddings and c.vocab_size == GPT2_VOCAB_SIZE
    counts = count_parameters(model)
    assert counts["non_embedding"] == 24 * (4 * 2048**2 + 3 * 2048 * 8192 + 2 * 2048) + 2048
    # FineWeb's "1.82B" counts the tied embedding twice (input and output)
    assert (counts["total"] + counts["embedding"]) / 1e9 == pytest.approx(1.82, abs=0.01)


def test_unknown_preset_names_the_choices():
    with pytest.raises(ValueError, match="cpu-tiny"):
        preset("huge")
    assert set(PRESETS) == {"cpu-tiny", "gpu-small", "fineweb-1.8b"}
