"""``token_loss`` asks the model for logits only where a completion token is predicted; the loss and the
count of correct tokens are exactly those of the full-logits computation."""

import torch
import torch.nn.functional as F
from transformers import LlamaConfig, LlamaForCausalLM

from switchyard.finetune.data import IGNORE_INDEX
from switchyard.finetune.train import token_loss


def test_loss_on_kept_logits_equals_the_full_computation():
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=100, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2))
    ids = torch.randint(0, 100, (3, 12))
    attention = torch.ones_like(ids)
    attention[2, 9:] = 0  # a right-padded row
    labels = torch.full_like(ids, IGNORE_INDEX)
    labels[0, 8:], labels[1, 5:7], labels[2, 6:9] = ids[0, 8:], ids[1, 5:7], ids[2, 6:9]

    loss, correct = token_loss(model, {"input_ids": ids, "attention_mask": attention, "labels": labels})

    logits = model(input_ids=ids, attention_mask=attention).logits.reshape(-1, 100)
    shifted = F.pad(labels, (0, 1), value=IGNORE_INDEX)[:, 1:].reshape(-1)
    expected = F.cross_entropy(logits, shifted, ignore_index=IGNORE_INDEX, reduction="sum")
    assert torch.allclose(loss, expected, atol=1e-5)
    assert int(correct) == int(((logits.argmax(-1) == shifted) & (shifted != IGNORE_INDEX)).sum())
