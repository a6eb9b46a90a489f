"""``vqa_accuracy``: the VQA challenge's accuracy, 0–100, with its answer normalisation.

Written here rather than imported: the official evaluation (GT-Vision-Lab/VQA ``vqaEval.py``) is not
published as a package, and the frameworks that carry a copy (lmms-eval) bring a whole multimodal
stack. This module follows the official procedure step for step, including its quirks:

- the prediction: newlines and tabs to spaces, strip, punctuation, then number words to digits,
  articles dropped, contraction-less spellings to contractions;
- the human answers get the punctuation step only, and only when they are not all the same;
- accuracy = the mean over the 10 leave-one-annotator-out subsets of ``min(#matches / 3, 1)``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from switchyard.evaluation.metrics import Options, Scored, usable
from switchyard.evaluation.schemas import Item

NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = frozenset({"a", "an", "the"})
PUNCTUATION = (";", ":", "/", "'", "[", "]", '"', "(", ")", "=", "+", "\\", "_", ">", "<", "@", "`", ",", "?")
# A period that is not part of a number; the official pattern's look-behind is written "(?!<=\d)",
# which is a look-ahead in fact: kept as is so that "1.5" and "a.m." behave as they do there.
PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")
# Spellings without the apostrophe → the contraction. The official table lists these; ours is built
# from the same rule: the apostrophe goes back where English puts it. (Its "Im", "Ive" and "Id've" keys
# are capitalised and never match lowercased text, so they are left out.)
_CONTRACTIONS = [
    "ain't", "aren't", "can't", "could've", "couldn't", "couldn't've", "didn't", "doesn't", "don't", "hadn't",
    "hadn't've", "hasn't", "haven't", "he'd", "he'd've", "he's", "how'd", "how'll", "how's",
    "isn't", "it'd", "it'd've", "it'll", "let's", "ma'am", "mightn't", "mightn't've", "might've",
    "mustn't", "must've", "needn't", "not've", "o'clock", "oughtn't", "shan't", "she'd've", "should've",
    "shouldn't", "shouldn't've", "somebody'd've", "somebody'll", "somebody's", "someone'd", "someone'd've",
    "someone'll", "someone's", "something'd", "something'd've", "something'll", "that's", "there'd",
    "there'd've", "there're", "there's", "they'd", "they'd've", "they'll", "they're", "they've", "'twas",
    "wasn't", "we'd've", "we've", "weren't", "what'll", "what're", "what's", "what've", "when's", "where'd",
    "where's", "where've", "who'd", "who'd've", "who'll", "who's", "who've", "why'll", "why're", "why's",
    "won't", "would've", "wouldn't", "wouldn't've", "y'all", "y'all'll", "y'all'd've", "you'd", "you'd've",
    "you'll", "you're", "you've",
]
CONTRACTIONS = {c.replace("'", ""): c for c in _CONTRACTIONS}


def normalize_punctuation(text: str) -> str:
    out = text
    has_digit_comma = DIGIT_COMMA.search(text) is not None
    for p in PUNCTUATION:
        # Punctuation next to a space (or any "1,000"-style number in the text) is dropped; punctuation
        # inside a word becomes a space.
        out = out.replace(p, "" if (p + " " in text or " " + p in text or has_digit_comma) else " ")
    return PERIOD.sub("", out)


def normalize_digits_articles(text: str) -> str:
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    return " ".join(CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES)


def normalize_prediction(text: str) -> str:
    text = text.replace("\n", " ").replace("\t", " ").strip()
    return normalize_digits_articles(normalize_punctuation(text))


def accuracy(prediction: str, answers: Sequence[str]) -> float:
    """One question's accuracy in [0, 1]."""
    predicted = normalize_prediction(prediction)
    humans = list(answers)
    if len(set(humans)) > 1:
        humans = [normalize_punctuation(a) for a in humans]
    per_subset = []
    for left_out in range(len(humans)):
        matches = sum(1 for j, a in enumerate(humans) if j != left_out and a == predicted)
        per_subset.append(min(1.0, matches / 3))
    return sum(per_subset) / len(per_subset)


def _check(item: Item) -> str | None:
    if item.prediction is None:
        return "missing prediction"
    if not item.answers:
        return "missing answers (the human answers, usually 10)"
    return None


def score(names: Sequence[str], items: Sequence[Item], options: Options) -> dict[str, Scored]:
    good, failed = usable(items, "vqa_accuracy", _check)
    result = Scored(failed=failed)
    for item in good:
        result.per_item[item.id] = 100.0 * accuracy(item.prediction, item.answers)
    if result.per_item:
        result.aggregate = sum(result.per_item.values()) / len(result.per_item)
    return {"vqa_accuracy": result}
