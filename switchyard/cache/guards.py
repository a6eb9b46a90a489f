"""Semantic false-hit guards: a negation, a changed number or a changed named entity is a miss.

Sentence embeddings put "Is X safe?" and "Is X not safe?", or "... in 2023" and "... in 2024", a few
hundredths apart in cosine distance: closer than many true paraphrases. So a semantic hit needs, on
top of the distance threshold, the same *signature*: the numbers (digits and number words), the
negation words, and the named entities (capitalised words that are not common sentence words) of the
two prompts must be equal as sets (negation counts as present or absent), and the prompts must not
differ by one swapped content word ("soft" → "hard yolk", "enable" → "disable", "per minute" → "per
hour"): a paraphrase rewords, a near miss swaps one word. Hand-written because no library here does
this cheaply: spaCy's NER would add a model load and ~5 ms per prompt to every lookup, and the test is
deliberately strict (a missed paraphrase costs one model call; a false hit serves a wrong answer).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NUMBER_WORDS = {
    "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "thirteen": "13",
    "fourteen": "14", "fifteen": "15", "sixteen": "16", "seventeen": "17", "eighteen": "18",
    "nineteen": "19", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "hundred": "100",
    "thousand": "1000", "million": "1000000", "billion": "1000000000", "first": "1", "second": "2",
    "third": "3", "half": "0.5", "dozen": "12", "single": "1", "double": "2", "twice": "2", "once": "1",
}
_NEGATIONS = {
    "not", "no", "never", "none", "nothing", "nobody", "nowhere", "neither", "nor", "without", "cannot",
    "cant", "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "wont", "wouldnt", "shouldnt",
    "couldnt", "hasnt", "havent", "hadnt", "mustnt", "neednt", "except", "excluding", "unless", "avoid",
    "lack", "lacks", "fail", "fails", "false", "incorrect", "unsafe", "illegal", "impossible",
}
# Capitalised words that are sentence furniture, not names (question words, pronouns, verbs a prompt
# starts with). Compared lowercased.
_COMMON_WORDS = """
a an the and or but if then so of in on at to for from by with about as into over under after before
what whats which who whom whose when where why how is are was were be been being do does did done can
could should would will shall may might must have has had having i im ive id you your yours we our us
they their them he she it its his her this that these those there here please tell explain describe give
show list name write summarize summarise define compare find help let lets make say translate provide
any some all each every my me mine also just only very more most much many other another such same
yes okay ok hi hello hey thanks thank dear quick briefly brief short simple simply in-depth one
answer question step steps using use used according based given note now today currently
"""
_COMMON = frozenset(_COMMON_WORDS.split())

_TOKEN_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d[\d,]*(?:\.\d+)?%?")


@dataclass(frozen=True)
class Signature:
    numbers: frozenset[str]
    negations: frozenset[str]
    entities: frozenset[str]
    words: frozenset[str] = frozenset()  # content words (not sentence furniture), lowercased

    def to_json(self) -> dict[str, list[str]]:
        return {"n": sorted(self.numbers), "x": sorted(self.negations), "e": sorted(self.entities),
                "w": sorted(self.words)}

    @classmethod
    def from_json(cls, data: dict[str, list[str]]) -> Signature:
        return cls(frozenset(data.get("n", [])), frozenset(data.get("x", [])), frozenset(data.get("e", [])),
                   frozenset(data.get("w", [])))


def signature(text: str) -> Signature:
    numbers, negations, entities, words = set(), set(), set(), set()
    for token in _TOKEN_RE.findall(text):
        if token[0].isdigit():
            numbers.add(token.replace(",", "").rstrip("%").rstrip("."))
            continue
        word = token.replace("’", "'").strip("'-")
        lower = word.lower()
        bare = lower.replace("'", "")
        if bare in _NEGATIONS or (lower.endswith("n't")):
            negations.add("not")  # "isn't", "is not" and "never" all turn the question around
            continue
        if lower in _NUMBER_WORDS:
            numbers.add(_NUMBER_WORDS[lower])
            continue
        base = word.removesuffix("'s")
        if base.lower() not in _COMMON:
            words.add(base.lower().removesuffix("s"))
            if base[:1].isupper():
                entities.add(base.lower())
    return Signature(frozenset(numbers), frozenset(negations), frozenset(entities), frozenset(words))


def compatible(a: Signature, b: Signature) -> bool:
    """Whether a semantic match between prompts with these signatures may be served."""
    if (a.numbers, a.negations, a.entities) != (b.numbers, b.negations, b.entities):
        return False
    if not a.words or not b.words:  # an entry stored before words were recorded
        return True
    only_a, only_b = a.words - b.words, b.words - a.words
    return not (len(only_a) == 1 and len(only_b) == 1)  # one word swapped for another: a near miss
