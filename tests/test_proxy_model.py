"""The presets build the model sizes they claim (the large ones on the meta device: no memory used); the Gemma-3
presets have Gemma 3's attention and norms, train, and reload from their HF folder with the same logits."""

from dataclasses import replace

import pytest
import torch

from winnow.proxy.model import (
    GPT2_VOCAB_SIZE,
    PRESETS,
    build_model,
    count_parameters,
    flops_per_token,
    preset,
)


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
    assert {"cpu-tiny", "gpu-small", "fineweb-1.8b", "cpu-tiny-gemma3", "gpu-small-gemma3"} <= set(PRESETS)


def test_the_config_accepts_every_preset():
    """AblateConfig's `preset` choices are the model presets (the Literal there is written out, not derived)."""
    from typing import get_args

    from winnow.pipelines.config import AblateConfig

    assert set(get_args(AblateConfig.model_fields["preset"].annotation)) == set(PRESETS)


@pytest.mark.parametrize("name", ["cpu-tiny-gemma3", "gpu-small-gemma3"])
def test_gemma3_presets_have_qk_norm_pre_and_post_norms_and_5_to_1_local_attention(name):
    cfg = preset(name)
    model = build_model(cfg.with_vocab(cfg.corpus_vocab_size) if cfg.tokenizer == "corpus" else cfg, device="meta")
    c = model.config
    assert type(model).__name__ == "Gemma3ForCausalLM" and c.model_type == "gemma3_text"
    assert c.attn_logit_softcapping is None and c.final_logit_softcapping is None  # no soft-capping ...
    layer = model.model.layers[0]
    assert layer.self_attn.q_norm.weight.shape == layer.self_attn.k_norm.weight.shape == (c.head_dim,)  # ... QK-norm
    for norm in (
        "input_layernorm",
        "post_attention_layernorm",
        "pre_feedforward_layernorm",
        "post_feedforward_layernorm",
    ):
        assert getattr(layer, norm).weight.shape == (c.hidden_size,)  # pre- and post-norm around both blocks
    assert c.layer_types.count("sliding_attention") == 5 * c.layer_types.count("full_attention")
    assert all(t == "full_attention" for t in c.layer_types[5::6])  # every sixth layer is global
    # the window: Gemma 3's 1,024 tokens where the context is longer; cpu-tiny's quarter of its 256-token context
    assert c.sliding_window == (1024 if name == "gpu-small-gemma3" else 64) < cfg.context_length
    assert c.max_position_embeddings == cfg.context_length and c.tie_word_embeddings


def test_gpu_small_gemma3_is_gpu_small_sized():
    counts = count_parameters(build_model(preset("gpu-small-gemma3"), device="meta"))
    llama = count_parameters(build_model(preset("gpu-small"), device="meta"))
    assert counts["embedding"] == llama["embedding"]
    # the same matrices; Gemma adds 2 norms per layer and two per-head QK norms (a few thousand parameters)
    assert counts["non_embedding"] == llama["non_embedding"] + 12 * (2 * 768 + 2 * 64)


def test_local_layers_attend_to_the_window_only():
    """Changing a token further back than the window changes nothing in a local layer's output, but the global
    layer sees it: the sliding window is really applied (on the cpu preset's 64-token window)."""
    cfg = replace(preset("cpu-tiny-gemma3").with_vocab(512), n_layer=1, local_per_global=5)  # one local layer
    torch.manual_seed(0)
    local = build_model(cfg).eval()
    torch.manual_seed(0)
    glob = build_model(replace(cfg, local_per_global=0)).eval()  # the same layer, global
    assert local.config.layer_types == ["sliding_attention"] and glob.config.layer_types == ["full_attention"]
    x = torch.randint(1, 512, (1, 200))
    y = x.clone()
    y[0, 10] = (x[0, 10] + 1) % 512
    with torch.no_grad():
        a, b = local(input_ids=x).logits, local(input_ids=y).logits
        assert torch.equal(a[0, 10 + 64 :], b[0, 10 + 64 :]) and not torch.equal(a[0, 10:74], b[0, 10:74])
        assert not torch.equal(glob(input_ids=x).logits[0, -1], glob(input_ids=y).logits[0, -1])


def test_flops_per_token_is_palms_formula():
    cfg = preset("gpu-small")
    n = count_parameters(build_model(cfg, device="meta"))["non_embedding"]
    assert flops_per_token(cfg, n) == 6 * n + 12 * 12 * 768 * 1024
