"""The proxy language model: transformers' LlamaForCausalLM or Gemma3ForCausalLM, sized by a named preset.

Nothing here is a hand-written transformer; a preset only fixes the architecture and the shape. Sizes are counted
the way papers count them: `non_embedding` excludes the token embedding (shared with the output layer when
embeddings are tied), which is what scales with data quality in an ablation.

Two architectures, so a team can check whether a data decision survives an architecture change:
- `llama` (FineWeb's ablation model): pre-norm RMSNorm, SwiGLU, RoPE, global attention in every layer.
- `gemma3` (transformers' Gemma3ForCausalLM, text only): QK-norm (RMSNorm on queries and keys) instead of
  Gemma-2's logit soft-capping (attention and final-logit soft-capping off), RMSNorm before *and* after both the
  attention and the MLP block, GeGLU, the input embedding scaled by √d_model, and 5 sliding-window (local)
  layers per global layer (`layer_types`), local layers attending to the last `sliding_window` tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch

GPT2_VOCAB_SIZE = 50257
ARCHITECTURES = ("llama", "gemma3")
GEMMA3_LOCAL_PER_GLOBAL = 5  # Gemma 3 technical report: "5 local layers for every global layer"
GEMMA3_WINDOW = 1024  # Gemma 3 technical report: local layers attend to 1,024 tokens


@dataclass(frozen=True)
class ProxyModelConfig:
    n_layer: int
    d_model: int
    n_head: int
    d_ffn: int
    context_length: int
    vocab_size: int = GPT2_VOCAB_SIZE
    n_kv_head: int | None = None  # None = n_head (plain multi-head attention, as FineWeb's ablation model)
    tie_embeddings: bool = True
    rope_theta: float = 10000.0
    tokenizer: str = "gpt2"  # "gpt2" (the GPT-2 BPE) or "corpus" (a small BPE trained on the ablation data)
    corpus_vocab_size: int = 8192  # vocabulary of the corpus BPE, when tokenizer == "corpus"
    architecture: str = "llama"  # "llama" | "gemma3"
    sliding_window: int | None = None  # gemma3: tokens a local layer attends to
    local_per_global: int = GEMMA3_LOCAL_PER_GLOBAL  # gemma3: local layers before each global one

    def with_vocab(self, vocab_size: int) -> ProxyModelConfig:
        return replace(self, vocab_size=vocab_size)

    def to_dict(self) -> dict:
        return asdict(self)

    def layer_types(self) -> list[str]:
        """Attention kind per layer: all global for llama; for gemma3 every (local_per_global + 1)-th is global."""
        if self.architecture != "gemma3":
            return ["full_attention"] * self.n_layer
        cycle = self.local_per_global + 1
        return ["full_attention" if (i + 1) % cycle == 0 else "sliding_attention" for i in range(self.n_layer)]


LlamaProxyConfig = ProxyModelConfig  # the name before the Gemma-3 presets

PRESETS: dict[str, ProxyModelConfig] = {
    # ~1.05M non-embedding parameters: trains at a few thousand tokens/s on one CPU core. With GPT-2's
    # 50k vocabulary the embedding (6.4M) would dwarf the network, so it uses an 8k BPE trained on the data.
    "cpu-tiny": ProxyModelConfig(
        n_layer=4, d_model=128, n_head=4, d_ffn=512, context_length=256, tokenizer="corpus", corpus_vocab_size=8192
    ),
    # ~113M non-embedding + 38.6M embedding ≈ 152M: the DataDecide 150M scale, GPT-2 vocabulary.
    "gpu-small": ProxyModelConfig(n_layer=12, d_model=768, n_head=12, d_ffn=3072, context_length=1024),
    # FineWeb's ablation model (FineWeb paper, "Ablation setup"): 24 layers, d 2048, FFN 8192, 32 heads,
    # context 2048, tied embeddings, GPT-2 tokenizer. 1.71B unique parameters; FineWeb's "1.82B" counts the
    # tied embedding twice (input and output).
    "fineweb-1.8b": ProxyModelConfig(n_layer=24, d_model=2048, n_head=32, d_ffn=8192, context_length=2048),
    # Gemma-3 style at cpu-tiny's width: 6 layers = one 5:1 cycle (5 local, 1 global). Gemma 3's 1,024-token window
    # would cover the whole 256-token context and make every layer global, so the window is scaled to a quarter
    # of the context (64 tokens), as 1,024 is a quarter of gpu-small-gemma3's context.
    "cpu-tiny-gemma3": ProxyModelConfig(
        n_layer=6,
        d_model=128,
        n_head=4,
        d_ffn=512,
        context_length=256,
        tokenizer="corpus",
        corpus_vocab_size=8192,
        architecture="gemma3",
        sliding_window=64,
    ),
    # gpu-small's shape with Gemma 3's attention: 12 layers = two 5:1 cycles, the literal 1,024-token window; the
    # context is 4,096 (not gpu-small's 1,024, where a 1,024 window would be global attention), local layers
    # seeing a quarter of it; RoPE base 10k on local layers and 1M on global ones, as Gemma 3.
    "gpu-small-gemma3": ProxyModelConfig(
        n_layer=12,
        d_model=768,
        n_head=12,
        d_ffn=3072,
        context_length=4096,
        architecture="gemma3",
        sliding_window=GEMMA3_WINDOW,
        rope_theta=1_000_000.0,
    ),
}


def preset(name: str) -> ProxyModelConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def llama_config(cfg: ProxyModelConfig, eos_token_id: int | None = None):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ffn,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_kv_head or cfg.n_head,
        max_position_embeddings=cfg.context_length,
        rope_theta=cfg.rope_theta,
        tie_word_embeddings=cfg.tie_embeddings,
        attention_dropout=0.0,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        pad_token_id=eos_token_id,
        initializer_range=0.02,
    )


def gemma3_config(cfg: ProxyModelConfig, eos_token_id: int | None = None):
    from transformers import Gemma3TextConfig

    head_dim = cfg.d_model // cfg.n_head
    return Gemma3TextConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.d_model,
        intermediate_size=cfg.d_ffn,
        num_hidden_layers=cfg.n_layer,
        num_attention_heads=cfg.n_head,
        num_key_value_heads=cfg.n_kv_head or cfg.n_head,
        head_dim=head_dim,
        query_pre_attn_scalar=head_dim,  # scores scaled by 1/√head_dim
        max_position_embeddings=cfg.context_length,
        sliding_window=cfg.sliding_window or GEMMA3_WINDOW,
        layer_types=cfg.layer_types(),
        # Gemma 3 replaced Gemma 2's soft-capping with QK-norm: both caps off
        attn_logit_softcapping=None,
        final_logit_softcapping=None,
        rope_parameters={
            "full_attention": {"rope_type": "default", "rope_theta": cfg.rope_theta},
            "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        },
        tie_word_embeddings=cfg.tie_embeddings,
        attention_dropout=0.0,
        bos_token_id=eos_token_id,
        eos_token_id=eos_token_id,
        # no padding index: Gemma's embedding would zero and freeze that row, and the pad token is EOS here
        pad_token_id=None,
        initializer_range=0.02,
        use_cache=False,
    )


def hf_config(cfg: ProxyModelConfig, eos_token_id: int | None = None):
    """The transformers config of the preset's architecture."""
    if cfg.architecture == "llama":
        return llama_config(cfg, eos_token_id)
    if cfg.architecture == "gemma3":
        return gemma3_config(cfg, eos_token_id)
    raise ValueError(f"unknown architecture {cfg.architecture!r}; choose one of {', '.join(ARCHITECTURES)}")


def build_model(
    cfg: ProxyModelConfig,
    eos_token_id: int | None = None,
    device: str | torch.device = "cpu",
    attn_implementation: str = "sdpa",
):
    """A freshly initialised causal LM of the preset's architecture and shape (call torch.manual_seed first)."""
    from transformers import Gemma3ForCausalLM, LlamaForCausalLM

    kind = Gemma3ForCausalLM if cfg.architecture == "gemma3" else LlamaForCausalLM
    with torch.device(device):
        model = kind._from_config(
            hf_config(cfg, eos_token_id), attn_implementation=attn_implementation, dtype=torch.float32
        )
    return model


def decoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks (the unit FSDP shards and activation checkpointing wraps)."""
    return list(model.get_decoder().layers)


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Unique parameters (a tied embedding counts once); `non_embedding` leaves out the token embedding."""
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings().weight
    n_embedding = embedding.numel() + (0 if output is embedding else output.numel())
    return {"total": total, "embedding": n_embedding, "non_embedding": total - n_embedding}


def flops_per_token(cfg: ProxyModelConfig, non_embedding: int) -> int:
    """Training FLOPs per token (forward + backward), PaLM's formula (Chowdhery et al. 2022, appendix B):
    6·N + 12·L·H·Q·T with N the non-embedding parameters, L layers, H·Q = d_model, T the context. For gemma3
    the attention term counts every layer as global (an upper bound: local layers attend to `sliding_window`
    tokens only), so its MFU is comparable with the llama presets' but slightly high."""
    return 6 * non_embedding + 12 * cfg.n_layer * cfg.d_model * cfg.context_length


def output_layer_flops(cfg: ProxyModelConfig) -> int:
    """Training FLOPs per token of the output projection (d_model × vocabulary, forward + backward), which
    `flops_per_token` leaves out with the embedding parameters: +29 % on gpu-small's GPT-2 vocabulary. nanoGPT's
    MFU counts it (its N includes the tied embedding)."""
    return 6 * cfg.d_model * cfg.vocab_size
