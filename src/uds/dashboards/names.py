"""Words in names: splitting identifiers, singular forms, synonyms, and readable titles.

One place for the word rules the goal reader and the candidate builder share, so a goal
word and a column name meet in the same form ("Categories" and "category_id" both give
"category").
"""

from __future__ import annotations

import re

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NON_WORD = re.compile(r"[^0-9a-zA-Z]+")

# Words whose plural is not made by the rules below, or that end in "s" as singulars.
_IRREGULAR = {
    "people": "person",
    "children": "child",
    "men": "man",
    "women": "woman",
    "data": "data",
    "media": "media",
    "series": "series",
    "species": "species",
    "news": "news",
    "analytics": "analytics",
    "sales": "sale",
    "indices": "index",
    "matrices": "matrix",
    "statuses": "status",
}
_KEEP_S = ("ss", "us", "is", "os", "as", "ics")


def split_words(name: str) -> list[str]:
    """`totalAmount`, `total_amount` and `Total Amount` all give ["total", "amount"]."""
    out: list[str] = []
    for chunk in _NON_WORD.split(name):
        if chunk:
            out.extend(w.lower() for w in _CAMEL.split(chunk) if w)
    return out


def singular(word: str) -> str:
    """A plain English singular: categories -> category, addresses -> address, status stays."""
    w = word.lower()
    if w in _IRREGULAR:
        return _IRREGULAR[w]
    if len(w) <= 3:
        return w
    if w.endswith("ies"):
        return w[:-3] + "y"
    if w.endswith(("sses", "shes", "ches", "xes", "zzes")):
        return w[:-2]
    if w.endswith(_KEEP_S):
        return w
    if w.endswith("s"):
        return w[:-1]
    return w


def name_words(name: str) -> list[str]:
    """The singular words of an identifier."""
    return [singular(w) for w in split_words(name)]


# Groups of words that mean the same thing in a goal and in a schema. A goal word matches a
# name through its group ("revenue" finds `total_amount`), weaker than by its own spelling.
SYNONYM_GROUPS: tuple[frozenset[str], ...] = tuple(
    frozenset(group.split())
    for group in (
        "revenue sale amount total price income turnover gmv spend spending earning",
        "spend spending amount revenue total price cost",
        "cost price amount fee expense charge",
        "price amount cost unit_price rate",
        "customer client buyer shopper purchaser account user",
        "user customer member account",
        "product item sku article good",
        "order purchase transaction sale",
        "payment transaction charge",
        "method type kind mode channel",
        "type kind category class",
        "category type kind group class segment genre",
        "status state stage",
        "quantity qty unit volume count",
        "employee staff worker personnel hire",
        "department team division unit",
        "subscription plan contract",
        "invoice bill billing",
        "country nation",
        "location country city region geo place",
        "event activity action",
        "salary pay compensation wage",
        "mrr recurring",
        "seat license",
        "company organization organisation business account",
        "tier level plan",
        "duration length latency elapsed",
    )
)
_SYNONYMS: dict[str, frozenset[str]] = {}
for _group in SYNONYM_GROUPS:
    for _word in _group:
        _SYNONYMS[_word] = _SYNONYMS.get(_word, frozenset()) | (_group - {_word})


def synonyms(word: str) -> frozenset[str]:
    """Words that mean the same as `word` (singular forms), without `word` itself."""
    return _SYNONYMS.get(singular(word), frozenset())


def humanize(name: str) -> str:
    """`total_amount` -> "total amount"."""
    return " ".join(split_words(name)) or name


def title_case(text: str) -> str:
    """The first letter up, the rest as written."""
    return text[:1].upper() + text[1:]


def plural_label(table_name: str) -> str:
    """What the rows of a table are called: `order_items` -> "order items"."""
    return humanize(table_name)


def entity_label(table_name: str) -> str:
    """One row of a table: `categories` -> "category", `order_items` -> "order item"."""
    words = split_words(table_name)
    if not words:
        return table_name
    words[-1] = singular(words[-1])
    return " ".join(words)
