"""murmur-e5-sentiment@2's shape: multilingual-e5-small whose top layers were fine-tuned for sentiment, run
from a point shared with the plain encoder.

The bottom `from_layer` transformer layers (and the 4-bit vocabulary table) stay the plain e5's, frozen. The
layers above are copied and fine-tuned (`adapted`), with a linear head over their mean-pooled output. So one
pass serves two outputs: the bottom layers run once, then the adapted layers give the sentiment and, when
asked (`embed=True`), the plain top layers give e5's own sentence embedding (mean-pooled, unit length), which
search and topics need unchanged. With the top 4 of 12 layers adapted, the embedding costs 4/12 of a pass
more (1.33x), not a second pass (2x).

What ships is the adapted layers in float16 and the head (`ADAPTED_FILE`, ~14 MB); the plain encoder comes
from the e5 conversion (e5.py), offline.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import SequenceClassifierOutput

ADAPTED_FILE = "adapted.safetensors"


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each text's real tokens' states."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


class AdaptedTopClassifier(torch.nn.Module):
    """e5's bottom layers, shared; its top layers adapted for sentiment, with a linear head; and, for
    embeddings, its plain top layers."""

    def __init__(self, encoder: Any, num_labels: int, *, from_layer: int) -> None:
        super().__init__()
        layers = encoder.encoder.layer
        if not 0 < from_layer < len(layers):
            raise ValueError(f"from_layer must be between 1 and {len(layers) - 1}")
        self.encoder = encoder  # the plain e5 (BertModel), frozen
        self.from_layer = from_layer
        self.adapted = torch.nn.ModuleList(copy.deepcopy(layer) for layer in layers[from_layer:])
        self.classifier = torch.nn.Linear(encoder.config.hidden_size, num_labels)
        self.normalize = False
        for p in self.encoder.parameters():
            p.requires_grad_(False)

    def mask(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> Any:
        """The attention mask in the form the encoder's attention implementation takes."""
        return create_bidirectional_mask(config=self.encoder.config, inputs_embeds=hidden,
                                         attention_mask=attention_mask)

    def bottom(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The hidden states after the shared (plain) layers."""
        hidden = self.encoder.embeddings(input_ids=input_ids)
        mask = self.mask(hidden, attention_mask)
        for layer in self.encoder.encoder.layer[: self.from_layer]:
            hidden = layer(hidden, mask)
        return hidden

    def sentiment_logits(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """The head's logits from the shared states, through the adapted layers."""
        mask = self.mask(hidden, attention_mask)
        for layer in self.adapted:
            hidden = layer(hidden, mask)
        return self.classifier(mean_pool(hidden, attention_mask))

    def plain_embedding(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """e5's own sentence embedding (mean-pooled, unit length) from the shared states."""
        mask = self.mask(hidden, attention_mask)
        for layer in self.encoder.encoder.layer[self.from_layer :]:
            hidden = layer(hidden, mask)
        return torch.nn.functional.normalize(mean_pool(hidden, attention_mask), dim=-1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *, embed: bool = False,
                **_: Any) -> SequenceClassifierOutput:
        # **_: token_type_ids from a tokenizer that emits them; e5 uses one token type.
        hidden = self.bottom(input_ids, attention_mask)
        out = SequenceClassifierOutput(logits=self.sentiment_logits(hidden, attention_mask))
        if embed:
            out["embeddings"] = self.plain_embedding(hidden, attention_mask)
        return out

    def adapted_state(self) -> dict[str, torch.Tensor]:
        """What ships: the adapted layers in float16 and the head in float32."""
        state = {f"adapted.{k}": v.detach().to(torch.float16).contiguous()
                 for k, v in self.adapted.state_dict().items()}
        state.update({f"classifier.{k}": v.detach().float().contiguous()
                      for k, v in self.classifier.state_dict().items()})
        return state

    def load_adapted_state(self, state: dict[str, torch.Tensor]) -> None:
        """Load `adapted_state()` output (raises RuntimeError on a mismatch)."""
        adapted = {k.removeprefix("adapted."): v.float() for k, v in state.items() if k.startswith("adapted.")}
        head = {k.removeprefix("classifier."): v.float() for k, v in state.items() if k.startswith("classifier.")}
        self.adapted.load_state_dict(adapted)
        self.classifier.load_state_dict(head)
