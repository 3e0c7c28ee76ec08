"""Reading a goal: its words into intents, aggregates, a chart type and catalog fields.

Deterministic and small on purpose: phrases name intents ("over time" is a trend, "by X"
a breakdown, "top 5" a top-N, "share of" a share of a whole, "distribution" a
distribution, "vs" a relationship, "how many" a single figure); aggregate words are kept
("number of" count, "total" sum, "average" avg, "minimum"/"maximum"); a named chart type
is kept (bar, line, pie, scatter, stacked, area, histogram, table). Every other word is a
field word and is matched to table and column names (split on case and `_`, singular
forms, a synonym table such as revenue ~ amount/total/price) and to semantic types
(revenue ~ money columns). Each match records what matched what and how strongly, so a
widget's reason can say why it answers the goal.

No goal, or only filler words, reads as an overview. A goal whose field words match
nothing is `matched=False`; the generator says so and still builds the overview.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from uds.dashboards.catalogfacts import is_pii, measure_of, table_ref
from uds.dashboards.names import name_words, singular, synonyms
from uds.discovery.snapshot import CatalogSnapshot

INTENTS = ("trend", "breakdown", "top", "share", "distribution", "relationship", "kpi")
CHARTS = ("bar", "line", "pie", "scatter", "stacked", "area", "histogram", "table")
MAX_GOAL_LENGTH = 500

_GRAIN_WORDS = {
    "hourly": "hour",
    "daily": "day",
    "weekly": "week",
    "monthly": "month",
    "quarterly": "quarter",
    "yearly": "year",
    "annual": "year",
    "annually": "year",
}
_GRAIN_NOUN = r"(hour|day|week|month|quarter|year)s?"

_INTENT_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (intent, re.compile(pattern))
    for intent, pattern in (
        (
            "trend",
            r"\bover time\b|\btrends?\b|\btrending\b|\btime ?series\b|\bhistor(?:y|ical)\b|\bgrowth\b|"
            r"\bgrow(?:ing|n)?\b|\bevolution\b|\btimeline\b|\bover the (?:last|past)\b|\bover the "
            rf"{_GRAIN_NOUN}\b|\b(?:hourly|daily|weekly|monthly|quarterly|yearly|annual(?:ly)?)\b|"
            rf"\b(?:per|by|each|every|a) {_GRAIN_NOUN}\b|\bseasonal\w*\b",
        ),
        (
            "top",
            r"\btop\b|\bbest\b|\bhighest\b|\bmost\b|\blargest\b|\bbiggest\b|\bleading\b|\bbottom\b|"
            r"\bworst\b|\blowest\b|\bleast\b|\branking\b|\branked\b",
        ),
        (
            "share",
            r"\bshares?\b|\bproportions?\b|\bpercentage of\b|\bpercent of\b|\bmix\b|\bcomposition\b|"
            r"\bsplit of\b|\bfractions?\b|\bpie\b",
        ),
        (
            "distribution",
            r"\bdistribution\b|\bdistributed\b|\bhistograms?\b|\bspread\b|\brange of\b|"
            r"\bvariance\b|\bvariation\b|\boutliers?\b",
        ),
        (
            "relationship",
            r"\brelationships?\b|\bcorrelat\w*\b|\bvs\.?\b|\bversus\b|\bagainst\b|\bscatter\w*\b|"
            r"\bdepends? on\b",
        ),
        ("breakdown", r"\bbreak ?downs?\b|\bbroken down\b|\bcompar\w*\b|\bsegment(?:ed|s)?\b|\bgrouped\b"),
        (
            "kpi",
            r"\bkpis?\b|\bkey (?:metrics|figures|numbers|indicators)\b|\bheadline (?:figures|numbers)\b|"
            r"\bat a glance\b",
        ),
    )
)
_BY = re.compile(
    r"\b(?:by|per|across|for each|each|every|grouped by|split by|broken down by)\s+([a-z0-9_ ]+)"
)
_AGGREGATES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("count", re.compile(r"\bhow many\b|\bnumber of\b|\bcounts?\b|\bcounting\b")),
    ("sum", re.compile(r"\btotals?\b|\bsum\b|\bsums\b|\bsummed\b")),
    ("avg", re.compile(r"\baverages?\b|\bmean\b|\bavg\b|\btypical\b")),
    ("min", re.compile(r"\bmin\b|\bminimum\b|\bsmallest\b")),
    ("max", re.compile(r"\bmax\b|\bmaximum\b")),
)
_ASCENDING = re.compile(r"\bbottom\b|\bworst\b|\blowest\b|\bleast\b|\bfewest\b")
_CHART_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("stacked", re.compile(r"\bstacked\b")),
    ("area", re.compile(r"\barea (?:chart|graph|plot)s?\b|\bas (?:an )?areas?\b")),
    ("line", re.compile(r"\bline (?:chart|graph|plot)s?\b|\bas (?:a )?lines?\b|\blines chart\b")),
    ("bar", re.compile(r"\bbar(?:s| chart| graph|chart)?\b|\bcolumn (?:chart|graph)s?\b")),
    ("pie", re.compile(r"\bpie\b|\bdonut\b|\bdoughnut\b")),
    ("scatter", re.compile(r"\bscatter\w*\b|\bbubble chart\b")),
    ("histogram", re.compile(r"\bhistograms?\b")),
    (
        "table",
        re.compile(r"\b(?:as|in) (?:a )?table\b|\btabular\b|\btable view\b|\bdata table\b|\bas a list\b"),
    ),
)
_TOP_N = re.compile(r"\b(?:top|bottom|best|worst|first|largest|biggest|highest|lowest)\s+(\d{1,3}|[a-z]+)\b")
_NUMBER_WORDS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "fifteen": 15,
    "twenty": 20,
    "fifty": 50,
}
_GRAIN = re.compile(rf"\b(?:per|by|each|every|a) {_GRAIN_NOUN}\b|\bover the (?:last |past )?{_GRAIN_NOUN}\b")

# Words that carry no field: filler, intent and aggregate vocabulary, chart words.
_STOP = frozenset(
    """
    a an the of for by per in on over to and or with from into at as is are was were be been do does did
    show shows showing me us give get see display plot chart charts graph graphs view report reports
    dashboard dashboards overview summary summarize what which who whom how many much when where why
    my our we i you your all each every any some this that these those there their its it vs versus
    against compare compared comparing comparison trend trends trending time times series over
    history historical growth grow growing evolution timeline top bottom best worst highest lowest most
    least largest biggest smallest leading ranking ranked rank number count counts counting total totals
    sum sums summed average averages mean avg typical min minimum max maximum breakdown break down broken
    split grouped group segment segmented distribution distributed spread range variance variation
    outlier outliers share shares proportion proportions percentage percent fraction mix composition
    relationship relationships correlation correlate correlated depend depends bar bars line lines pie
    donut doughnut scatter scatterplot bubble stacked area histogram histograms table tabular list
    kpi kpis key metric metrics figure figures numbers overall everything data across first last past
    hour hours hourly day days daily week weeks weekly month months monthly quarter quarters quarterly
    year years yearly annual annually seasonal seasonality please can could would should want need
    like look looking between than more less up out about based new latest recent current
    sold bought purchased used made placed happened done make
    """.split()
)

# Goal words that name a semantic type (or a measure kind) rather than a column.
SEMANTIC_WORDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(
        [
            "revenue",
            "sale",
            "spend",
            "spending",
            "money",
            "cost",
            "price",
            "income",
            "earning",
            "profit",
            "mrr",
            "arr",
            "gmv",
            "turnover",
            "salary",
            "payroll",
            "amount",
            "value",
            "billing",
        ],
        ("money",),
    ),
    **dict.fromkeys(["quantity", "unit", "volume", "seat"], ("quantity",)),
    **dict.fromkeys(["duration", "latency", "elapsed"], ("duration",)),
    **dict.fromkeys(["rate", "ratio"], ("percentage",)),
    **dict.fromkeys(
        ["location", "geography", "geographic", "region", "geo", "map", "country", "countries"],
        ("country", "city"),
    ),
    "city": ("city",),
    "currency": ("currency",),
}

_TOKEN = re.compile(r"[a-z0-9_]+")


@dataclass(frozen=True, slots=True)
class FieldMatch:
    """One goal word matched to a table ("schema.table") or a column ("schema.table.column")."""

    word: str
    ref: str
    level: str  # table | column
    via: str  # how: "name", "synonym of amount", "semantic type money"
    strength: float  # 0..1

    def describe(self) -> str:
        short = ".".join(self.ref.split(".")[1:])
        if self.via == "name":
            return f"'{self.word}' = {short}"
        return f"'{self.word}' ~ {short} ({self.via})"


@dataclass(frozen=True, slots=True)
class GoalReading:
    text: str
    intents: tuple[str, ...] = ()
    aggregates: tuple[str, ...] = ()
    chart: str | None = None
    top_n: int | None = None
    ascending: bool = False
    grain: str | None = None
    words: tuple[str, ...] = ()  # field words (singular)
    by_words: tuple[str, ...] = ()  # field words that follow "by", "per", "across"
    matches: tuple[FieldMatch, ...] = ()
    unmatched: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def vague(self) -> bool:
        """Nothing to steer by: the overview is the answer."""
        return not self.words and not self.intents and self.chart is None

    @property
    def matched(self) -> bool:
        """False when the goal names things and none of them is in the catalog."""
        return bool(self.matches) or not self.words

    def matches_for(self, word: str) -> list[FieldMatch]:
        return [m for m in self.matches if m.word == word]

    def to_dict(self) -> dict[str, object]:
        return {
            "text": self.text,
            "intents": list(self.intents),
            "aggregates": list(self.aggregates),
            "chart": self.chart,
            "topN": self.top_n,
            "ascending": self.ascending,
            "grain": self.grain,
            "words": list(self.words),
            "byWords": list(self.by_words),
            "matches": [m.describe() for m in self.matches],
            "unmatched": list(self.unmatched),
            "notes": list(self.notes),
        }


def read_goal(goal: str | None, catalog: CatalogSnapshot) -> GoalReading:
    """The goal's intents, aggregates, chart type and catalog fields (see the module doc)."""
    text = " ".join((goal or "").split())
    if len(text) > MAX_GOAL_LENGTH:
        text = text[:MAX_GOAL_LENGTH]
    low = text.lower()
    notes: list[str] = []

    intents: list[str] = []
    for intent, pattern in _INTENT_PATTERNS:
        found = pattern.search(low)
        if found:
            intents.append(intent)
            notes.append(f"'{found.group(0)}' -> {intent}")
    by_words = _by_words(low)
    if by_words and "breakdown" not in intents:
        intents.append("breakdown")
        notes.append(f"'by {' '.join(by_words)}' -> breakdown")
    aggregates = []
    for aggregate, pattern in _AGGREGATES:
        found = pattern.search(low)
        if found:
            aggregates.append(aggregate)
            notes.append(f"'{found.group(0)}' -> {aggregate}")
    if aggregates and not intents:
        intents.append("kpi")
    chart = None
    for name, pattern in _CHART_PATTERNS:
        found = pattern.search(low)
        if found:
            chart = name
            notes.append(f"'{found.group(0)}' -> {name} chart")
            break
    top_n = _top_n(low)
    if top_n is not None:
        notes.append(f"top {top_n}")
        if "top" not in intents:
            intents.append("top")
    grain = _grain(low)
    if grain:
        notes.append(f"grain {grain}")

    words: list[str] = []
    for token in _TOKEN.findall(low):
        if token in _STOP or token.isdigit() or token in _NUMBER_WORDS or len(token) < 2:
            continue
        word = singular(token)
        if word in _STOP or word in words:
            continue
        words.append(word)
    matches = _match_words(words, catalog)
    matched_words = {m.word for m in matches}
    ordered = tuple(i for i in INTENTS if i in intents)
    return GoalReading(
        text=text,
        intents=ordered,
        aggregates=tuple(aggregates),
        chart=chart,
        top_n=top_n,
        ascending=bool(_ASCENDING.search(low)),
        grain=grain,
        words=tuple(words),
        by_words=tuple(w for w in by_words if w in words),
        matches=tuple(matches),
        unmatched=tuple(w for w in words if w not in matched_words),
        notes=tuple(notes),
    )


def _by_words(low: str) -> list[str]:
    out: list[str] = []
    for found in _BY.finditer(low):
        for token in found.group(1).split()[:3]:
            word = singular(token)
            if token in _STOP or word in _STOP:
                if out:
                    break
                continue
            out.append(word)
    return out


def _top_n(low: str) -> int | None:
    found = _TOP_N.search(low)
    if not found:
        return None
    raw = found.group(1)
    n = int(raw) if raw.isdigit() else _NUMBER_WORDS.get(raw)
    return max(1, min(n, 50)) if n else None


def _grain(low: str) -> str | None:
    for word, grain in _GRAIN_WORDS.items():
        if re.search(rf"\b{word}\b", low):
            return grain
    found = _GRAIN.search(low)
    if found:
        return next(g for g in found.groups() if g)
    return None


def _match_words(words: list[str], catalog: CatalogSnapshot) -> list[FieldMatch]:
    out: list[FieldMatch] = []
    tables = sorted(catalog.tables, key=lambda t: t.key)
    for word in words:
        alike = synonyms(word)
        semantic = SEMANTIC_WORDS.get(word, ())
        best: dict[str, FieldMatch] = {}

        def keep(match: FieldMatch, best: dict[str, FieldMatch] = best) -> None:
            old = best.get(match.ref)
            if old is None or match.strength > old.strength:
                best[match.ref] = match

        for table in tables:
            ref = table_ref(table)
            t_words = name_words(table.name)
            main = t_words[-1] if t_words else ""
            if word == main or word == "".join(t_words):
                keep(FieldMatch(word, ref, "table", "name", 1.0))
            elif word in t_words:
                keep(FieldMatch(word, ref, "table", "name", 0.5))
            elif main in alike:
                keep(FieldMatch(word, ref, "table", f"synonym of {main}", 0.7))
            for column in table.columns:
                if is_pii(table, column):
                    continue  # never a dimension: matching it would only mislead the scores
                c_ref = f"{ref}.{column.name}"
                c_words = [w for w in name_words(column.name) if w != "id"]
                if not c_words:
                    continue
                if c_words == [word] or word == "".join(c_words):
                    keep(FieldMatch(word, c_ref, "column", "name", 1.0))
                elif word in c_words:
                    keep(FieldMatch(word, c_ref, "column", "name", 0.8))
                else:
                    common = sorted(alike.intersection(c_words))
                    if common:
                        # total_amount is all revenue-words; unit_price only half of it.
                        whole = set(c_words) <= alike
                        keep(
                            FieldMatch(
                                word, c_ref, "column", f"synonym of {common[0]}", 0.7 if whole else 0.56
                            )
                        )
                if semantic:
                    kind = column.semantic_type
                    if kind not in semantic:
                        measure = measure_of(table, column, set(table.primary_key))
                        kind = measure.kind if measure is not None else None
                    if kind in semantic:
                        keep(FieldMatch(word, c_ref, "column", f"semantic type {kind}", 0.6))
        out.extend(sorted(best.values(), key=lambda m: (-m.strength, m.level != "table", m.ref)))
    return out
