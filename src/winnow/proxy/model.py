"""The proxy language model: transformers' LlamaForCausalLM, sized by a named preset.

Nothing here is a hand-written transformer; a preset only fixes the shape. Sizes are counted the way
papers count them: `non_embedding` excludes the token embedding (shared with the output layer when
embeddings are tied), which is what scales with data quality in an ablation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import torch
from transformers import LlamaConfig, LlamaForCausalLM

GPT2_VOCAB_SIZE = 50257


@dataclass(frozen=True)
class LlamaProxyConfig:
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

    def with_vocab(self, vocab_size: int) -> LlamaProxyConfig:
        return replace(self, vocab_size=vocab_size)

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS: dict[str, LlamaProxyConfig] = {
    # ~1.05M non-embedding parameters: trains at a few thousand tokens/s on one CPU core. With GPT-2's
    # 50k vocabulary the embedding (6.4M) would dwarf the network, so it uses an 8k BPE trained on the data.
    "cpu-tiny": LlamaProxyConfig(
        n_layer=4, d_model=128, n_head=4, d_ffn=512, context_length=256, tokenizer="corpus", corpus_vocab_size=8192
    ),
    # ~113M non-embedding + 38.6M embedding ≈ 152M: the DataDecide 150M scale, GPT-2 vocabulary.
    "gpu-small": LlamaProxyConfig(n_layer=12, d_model=768, n_head=12, d_ffn=3072, context_length=1024),
    # FineWeb's ablation model (FineWeb paper, "Ablation setup"): 24 layers, d 2048, FFN 8192, 32 heads,
    # context 2048, tied embeddings, GPT-2 tokenizer. 1.71B unique parameters; FineWeb's "1.82B" counts the
    # tied embedding twice (input and output).
    "fineweb-1.8b": LlamaProxyConfig(n_layer=24, d_model=2048, n_head=32, d_ffn=8192, context_length=2048),
}


def preset(name: str) -> LlamaProxyConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def llama_config(cfg: LlamaProxyConfig, eos_token_id: int | None = None) -> LlamaConfig:
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


def build_model(
    cfg: LlamaProxyConfig,
    eos_token_id: int | None = None,
    device: str | torch.device = "cpu",
    attn_implementation: str = "sdpa",
) -> LlamaForCausalLM:
    """A freshly initialised LlamaForCausalLM of the preset's shape (call torch.manual_seed first)."""
    with torch.device(device):
        model = LlamaForCausalLM._from_config(
            llama_config(cfg, eos_token_id), attn_implementation=attn_implementation, dtype=torch.float32
        )
    return model


def count_parameters(model: torch.nn.Module) -> dict[str, int]:
    """Unique parameters (a tied embedding counts once); `non_embedding` leaves out the token embedding."""
    unique = {id(p): p for p in model.parameters()}
    total = sum(p.numel() for p in unique.values())
    embedding = model.get_input_embeddings().weight
    output = model.get_output_embeddings().weight
    n_embedding = embedding.numel() + (0 if output is embedding else output.numel())
    return {"total": total, "embedding": n_embedding, "non_embedding": total - n_embedding}
