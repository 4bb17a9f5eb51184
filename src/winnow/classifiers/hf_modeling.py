"""winnow's `embed` classifier as a transformers sequence-classification model (what `winnow export-classifier` writes).

This file depends on torch and transformers only: the export copies it into the model folder, so that anyone can load
the folder without winnow:

    AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)

and score it with the FineWeb-Edu classifier's recipe (`logits.squeeze(-1)` is the score on the 0-5 scale).

Why a custom class and not BertForSequenceClassification: winnow's classifier is a frozen sentence encoder with MEAN
pooling over the non-padding tokens, then L2 normalisation (all-MiniLM-L6-v2's own pipeline), a standardised linear
head and a monotone calibration map. transformers' BERT classification head reads the [CLS] token through a dense+tanh
pooler instead, so no stock class reproduces these scores; weights alone cannot make it do so. The model below is
that pipeline, nothing more:

    text ─► encoder (AutoModel from `config.encoder`) ─► mean over attention_mask ─► L2 normalise (if `normalize`)
         ─► (x − head_mean) / head_std ─► Linear(hidden, 1) ─► calibration knots (`config.calibration`) ─► logits [B, 1]

The calibration is applied inside `forward` (not left to the caller) so that the plain recipe gives exactly the score
winnow writes; the cut-points are also readable in config.json. The head and the calibration run in float32 even when
the encoder runs in bf16.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput

MODEL_TYPE = "winnow_edu_encoder"


class WinnowEduConfig(PretrainedConfig):
    model_type = MODEL_TYPE

    def __init__(
        self,
        encoder: dict | None = None,  # the sentence encoder's own config (a BertConfig as a dict, for MiniLM)
        pooling: str = "mean",
        normalize: bool = True,
        calibration: dict | None = None,  # {"t": raw cut}: raw cut ↦ t − 0.5, slope 1 beyond the outer knots
        **kwargs,
    ):
        kwargs.setdefault("num_labels", 1)
        kwargs.setdefault("problem_type", "regression")
        super().__init__(**kwargs)
        self.encoder = encoder or {}
        self.pooling = pooling
        self.normalize = normalize
        self.calibration = {str(t): float(c) for t, c in sorted((calibration or {}).items(), key=lambda x: int(x[0]))}


def calibrate(raw: torch.Tensor, calibration: dict) -> torch.Tensor:
    """winnow's ScoreCalibration in torch: linear between knots (cut_t, t − 0.5), slope 1 outside them."""
    if not calibration:
        return raw
    xs = torch.tensor([float(c) for c in calibration.values()], dtype=raw.dtype, device=raw.device)
    ys = torch.tensor([int(t) - 0.5 for t in calibration], dtype=raw.dtype, device=raw.device)
    if len(xs) == 1:
        return ys[0] + (raw - xs[0])
    segment = torch.clamp(torch.searchsorted(xs, raw.contiguous(), right=True) - 1, 0, len(xs) - 2)
    x0, x1, y0, y1 = xs[segment], xs[segment + 1], ys[segment], ys[segment + 1]
    inside = y0 + (raw - x0) * (y1 - y0) / (x1 - x0)
    below = ys[0] + (raw - xs[0])
    above = ys[-1] + (raw - xs[-1])
    return torch.where(raw < xs[0], below, torch.where(raw > xs[-1], above, inside))


class WinnowEduForSequenceClassification(PreTrainedModel):
    config_class = WinnowEduConfig
    base_model_prefix = "winnow_edu"

    def __init__(self, config: WinnowEduConfig):
        super().__init__(config)
        encoder_config = AutoConfig.for_model(**config.encoder)
        self.encoder = AutoModel.from_config(encoder_config)
        hidden = encoder_config.hidden_size
        self.register_buffer("head_mean", torch.zeros(hidden))
        self.register_buffer("head_std", torch.ones(hidden))
        self.head = nn.Linear(hidden, 1)
        self.post_init()

    def _init_weights(self, module):  # the weights always come from the exported checkpoint
        pass

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, labels=None, **kwargs):
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        tokens = self.encoder(**inputs).last_hidden_state
        # sentence-transformers' mean pooling: padding positions contribute nothing
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = (tokens * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
        pooled = pooled.float()
        if self.config.normalize:
            pooled = nn.functional.normalize(pooled, p=2, dim=1)
        standardised = (pooled - self.head_mean.float()) / self.head_std.float()
        raw = nn.functional.linear(standardised, self.head.weight.float(), self.head.bias.float()).squeeze(-1)
        logits = calibrate(raw, self.config.calibration).unsqueeze(-1)
        loss = None
        if labels is not None:
            loss = nn.functional.mse_loss(logits.squeeze(-1), labels.float())
        return SequenceClassifierOutput(loss=loss, logits=logits)
