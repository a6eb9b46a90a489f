"""``build_tiny_clip``: a CLIP built from a small config (random weights) for tests, benchmarks, demos.

Nothing is downloaded: the model comes from ``CLIPConfig``, the tokenizer is a word-level vocabulary
of the shipped probe words, and the image processor is CLIP's with a 32-pixel input. Scores from it
are meaningless; the plumbing they go through is the real one. Point ``clip_model`` at a real CLIP
directory (``save_pretrained`` of openai/clip-vit-base-patch32, say) for meaningful numbers.
"""

from __future__ import annotations

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
