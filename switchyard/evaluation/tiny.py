"""``build_tiny_clip``: a CLIP built from a small config (random weights) for tests, benchmarks, demos.

Nothing is downloaded: the model comes from ``CLIPConfig``, the tokenizer is a word-level vocabulary
of the shipped probe words, and the image processor is CLIP's with a 32-pixel input. Scores from it
are meaningless; the plumbing they go through is the real one. Point ``clip_model`` at a real CLIP
directory (``save_pretrained`` of openai/clip-vit-base-patch32, say) for meaningful numbers.
"""

from __future__ import annotations

import warnings
from pathlib import Path

WORDS = ["a", "an", "the", "of", "on", "in", "and", "with", "photo", "depicts", "red", "blue", "green", "yellow",
         "black", "white", "cube", "sphere", "cone", "square", "circle", "triangle", "small", "large", "dog", "cat",
         "horse", "man", "woman", "person", "car", "plate", "food", "picture", "image"]


def build_tiny_clip(path: str | Path, *, seed: int = 0, image_size: int = 32) -> Path:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = {tok: n for n, tok in enumerate(["<pad>", "<unk>", "<s>", "</s>", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    # CLIP pools the text at its end-of-text token: every text gets one.
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
                            eos_token="</s>").save_pretrained(path)
    CLIPImageProcessor(size={"shortest_edge": image_size},
                       crop_size={"height": image_size, "width": image_size}).save_pretrained(path)
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 32,
                     "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3},
        vision_config={"image_size": image_size, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
                       "num_hidden_layers": 2, "num_attention_heads": 4},
        projection_dim=16,
    )
    CLIPModel(config).save_pretrained(path)
    return path


def build_tiny_inception(path: str | Path, *, seed: int = 0, classes: int = 10, features: int = 16) -> Path:
    """A TorchScript file with the interface of the FID Inception (``inception-2015-12-05.pt``) that
    ``fid`` and ``inception_score`` load: ``net(uint8 NCHW, return_features=True)`` → pooled features;
    ``net(..., no_output_bias=True)`` → class probabilities without the output bias; resized inside,
    scaled as (x - 128) / 128. Random weights: scores from it are meaningless, the plumbing is real."""
    import torch
    import torch.nn.functional as F

    class TinyInception(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = torch.nn.Conv2d(3, features, kernel_size=5, stride=4)
            self.output = torch.nn.Linear(features, classes)

        def forward(self, img: torch.Tensor, return_features: bool = False, use_fp16: bool = False,
                    no_output_bias: bool = False) -> torch.Tensor:
            x = F.interpolate(img.to(torch.float32), size=(64, 64), mode="bilinear", align_corners=False)
            pooled = torch.relu(self.conv((x - 128) / 128)).mean(dim=(2, 3))
            if return_features:
                return pooled
            logits = pooled @ self.output.weight.t() if no_output_bias else self.output(pooled)
            return torch.softmax(logits, dim=1)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the format the real file has
        torch.jit.script(TinyInception().eval()).save(str(path))
    return path
