"""Semantic types and PII: what a column holds, from its values, its name and its profile.

Value detectors run on the pseudo-random distinct values the profiler returned, weighted
by how often each was seen, so "share of rows that look like an e-mail address" is what
decides, not the share of distinct values. A type is taken when that share reaches 0.9,
or 0.6 when the column's name says the same thing; the share is the column's validity.

Deliberate refusals: a phone number needs a '+' or '(' or a phone-like column name (so
zip codes and order numbers are not phones); a card number must pass the Luhn check (so
16-digit references are not cards); a person name needs a person-like column name (so
cities and product names are not people).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from uds.discovery.profiles import ColumnValues
from uds.discovery.snapshot import PII_TYPES, ColumnSnapshot, Relationship, TableSnapshot

STRONG = 0.9
WITH_NAME = 0.6

EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
URL = re.compile(r"(?:https?|ftp)://[^\s/$.?#][^\s]*", re.IGNORECASE)
PHONE_CHARS = re.compile(r"\+?[\d\s().\-/]{7,24}")
POSTAL = re.compile(
    r"\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]? ?\d[A-Z]{2}|[A-Z]\d[A-Z] ?\d[A-Z]\d|\d{4}(?: ?[A-Z]{2})?"
)
PERSON_NAME = re.compile(r"[A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'\u2019\-]+(?:[ \-][A-ZÀ-ÖØ-Þ][a-zà-öø-ÿ'\u2019\-]+){0,3}")
CARD_CHARS = re.compile(r"[\d \-]{13,23}")

COUNTRIES_2 = frozenset(
    "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV "
    "BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES "
    "ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE "
    "IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY "
    "MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU "
    "NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM "
    "SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE "
    "VG VI VN VU WF WS YE YT ZA ZM ZW UK".split()
)
COUNTRIES_3 = frozenset(
    "USA GBR DEU FRA CAN NLD ESP ITA SWE POL JPN AUS IRL BRA IND CHN MEX ARG CHE AUT BEL DNK NOR FIN PRT "
    "GRC CZE HUN ROU BGR HRV SVK SVN LTU LVA EST ISL LUX MLT CYP TUR RUS UKR ISR ZAF EGY NGA KEN MAR SAU "
    "ARE QAT KOR SGP MYS THA VNM IDN PHL NZL CHL COL PER VEN".split()
)
COUNTRY_NAMES = frozenset(
    name.lower()
    for name in (
        "United States",
        "United Kingdom",
        "Germany",
        "France",
        "Canada",
        "Netherlands",
        "Spain",
        "Italy",
        "Sweden",
        "Poland",
        "Japan",
        "Australia",
        "Ireland",
        "Brazil",
        "India",
        "China",
        "Mexico",
        "Argentina",
        "Switzerland",
        "Austria",
        "Belgium",
        "Denmark",
        "Norway",
        "Finland",
        "Portugal",
        "Greece",
        "Czech Republic",
        "Czechia",
        "Hungary",
        "Romania",
        "Turkey",
        "Russia",
        "Ukraine",
        "Israel",
        "South Africa",
        "Egypt",
        "Nigeria",
        "Kenya",
        "South Korea",
        "Singapore",
        "New Zealand",
        "Chile",
        "Colombia",
        "Peru",
        "USA",
        "UK",
    )
)
CURRENCIES = frozenset(
    "USD EUR GBP JPY CHF CAD AUD NZD CNY HKD SGD SEK NOK DKK PLN CZK HUF RON BGN TRY RUB UAH ILS INR IDR "
    "KRW MYR PHP THB VND BRL MXN ARS CLP COP PEN ZAR EGP NGN KES MAD SAR AED QAR ISK".split()
)

NAME_PERSON = re.compile(
    r"(^|_)(first|last|given|family|middle|full|sur|maiden|nick|display|contact|customer|user|person|"
    r"employee|author|owner|client|patient|member)_?name$|^(surname|firstname|lastname|fullname|forename)$"
)
PERSON_TABLES = re.compile(
    r"(^|_)(customer|user|person|people|employee|member|contact|client|patient|student|author|account_holder|"
    r"staff|subscriber|lead)s?$"
)
NAME_HINTS: dict[str, re.Pattern[str]] = {
    "email": re.compile(r"e_?mail"),
    "phone": re.compile(r"phone|mobile|(^|_)tel(ephone)?($|_)|(^|_)fax($|_)|(^|_)cell($|_)|msisdn"),
    "url": re.compile(r"url|uri|link|href|website|homepage"),
    "ip_address": re.compile(r"(^|_)ip($|_)|ip_?addr|ipv[46]|remote_addr|client_addr"),
    "card_number": re.compile(r"card|(^|_)pan($|_)|cc_?num|credit"),
    "country": re.compile(r"country|nation"),
    "currency": re.compile(r"currency|(^|_)ccy($|_)|(^|_)cur($|_)"),
    "postal_code": re.compile(r"zip|postal|post_?code|postcode|(^|_)plz($|_)"),
}
MONEY_NAME = re.compile(
    r"amount|price|total|cost|revenue|fee|balance|subtotal|tax|salary|wage|payment|paid|refund|discount|"
    r"spend|budget|income|charge|value_eur|value_usd|gmv|mrr|arr"
)
CREATED_NAME = re.compile(
    r"^(created|creation|inserted|registered|signup|signed_up|added|occurred|recorded|logged)(_at|_on|_time|_ts|"
    r"_date|_datetime|_timestamp)?$|^(date|time)_?(created|added)$|^create_(time|date|ts)$|^ts_created$"
)
UPDATED_NAME = re.compile(
    r"^(updated|modified|changed|edited|last_modified|last_updated|last_changed)(_at|_on|_time|_ts|_date|"
    r"_datetime|_timestamp)?$|^(date|time)_?(updated|modified)$|^update_(time|date|ts)$|^ts_updated$"
)
ID_NAME = re.compile(
    r"(^id$|_id$|^id_|_uuid$|^uuid$|_key$|_code$|^code$|_ref$|reference$|_no$|_number$|^sku$|_sku$)"
)
CATEGORY_NAME = re.compile(
    r"status|state|type|kind|category|level|tier|stage|segment|method|channel|source|flag"
)
EVENT_NAME = re.compile(r"(_at|_on|_time|_ts|_date|_datetime|_timestamp)$|^(date|time|ts|when)(_|$)")
LATITUDE_NAME = re.compile(r"(^|_)(lat|latitude)($|_)")
LONGITUDE_NAME = re.compile(r"(^|_)(lon|lng|long|longitude)($|_)")
PERCENT_NAME = re.compile(r"percent|(^|_)(pct|ratio|share|rate)($|_)")
DURATION_NAME = re.compile(
    r"(duration|elapsed|latency|runtime|(^|_)(ms|s|sec|secs|seconds|minutes|mins|hours|hrs|days)$|_time_(s|ms)$)"
)
CENTS = re.compile(r"(cents|_eur$|_usd$|_gbp$|minor_units)")
QUANTITY_NAME = re.compile(
    r"(quantity|(^|_)qty($|_)|pieces|(^|_)units($|_)|(^|_)count($|_)|_count$|^num_|^n_|number_of|(^|_)items$|"
    r"(^|_)(seats|copies|parcels|boxes|pallets|packages)$)"
)
VALUE_NAME = re.compile(r"(^|_)value($|_)")
CITY_NAME = re.compile(r"(^|_)(city|town|municipality|locality|place)($|_)")
PLACE = re.compile(r"[A-ZÀ-ÖØ-Þ][A-Za-zÀ-ÖØ-öø-ÿ'\u2019.\-]*(?:[ \-][A-Za-zÀ-ÖØ-öø-ÿ'\u2019.\-]+){0,4}")
YEAR_NAME = re.compile(r"(^|_)year($|_)")
MEASURE_NAME = re.compile(r"(weight|height|width|length|depth|volume|capacity|distance|size|score|km|kg|_m$)")
UNIT_NAME = re.compile(r"(^|_)(kg|g|lb|lbs|km|mi|m|cm|mm|l|ml|kwh|w|kw|c|f|pct|bytes|kb|mb|gb)($)")
LABEL_NAME = re.compile(
    r"^(name|title|label|display_name|caption|headline|description)$|_(name|title|label)$"
)
PERSONAL_NAME_ONLY = re.compile(
    r"(^|_)(ssn|social_security|passport|national_id|tax_id|iban|birth|dob|date_of_birth|birthday|street|"
    r"address_line|home_address|gender|salary)($|_)"
)


@dataclass(slots=True)
class Semantic:
    type: str | None = None
    confidence: float | None = None
    reasons: list[str] = field(default_factory=list)
    pii: bool = False
    # Share of sampled non-null rows valid for the detected type (None: not measured).
    validity: float | None = None


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def is_email(v: str) -> bool:
    return EMAIL.fullmatch(v) is not None


def is_url(v: str) -> bool:
    return URL.fullmatch(v) is not None


_OCTET = r"(0|[1-9][0-9]{0,2})"
_IPV4 = re.compile(rf"{_OCTET}\.{_OCTET}\.{_OCTET}\.{_OCTET}(?:/([0-9]{{1,2}}))?")


def is_ip(v: str) -> bool:
    """An IPv4 or IPv6 address, optionally with a prefix: what ipaddress.ip_interface
    accepts. Dotted quads are checked here (ipaddress costs about 30 us a value, and
    columns of addresses are checked value by value)."""
    v = v.strip()
    quad = _IPV4.fullmatch(v)
    if quad is not None:
        octets_ok = all(int(o) <= 255 for o in quad.groups()[:4])
        return octets_ok and (quad[5] is None or int(quad[5]) <= 32)
    if ":" not in v and "/" not in v:
        return False  # no IPv6 without a colon; no other IPv4 form without a prefix
    try:
        ipaddress.ip_interface(v)
    except ValueError:
        return False
    return True


def is_card(v: str) -> bool:
    if CARD_CHARS.fullmatch(v) is None:
        return False
    digits = re.sub(r"[ \-]", "", v)
    return 13 <= len(digits) <= 19 and digits.isdigit() and luhn_ok(digits)


def is_phone(v: str) -> bool:
    if PHONE_CHARS.fullmatch(v.strip()) is None:
        return False
    digits = sum(ch.isdigit() for ch in v)
    return 7 <= digits <= 15


def is_marked_phone(v: str) -> bool:
    """A phone shape with a mark only phone numbers carry: a leading + or an area code in ()."""
    s = v.strip()
    return is_phone(s) and (s.startswith("+") or "(" in s)


def is_postal(v: str) -> bool:
    return POSTAL.fullmatch(v.strip().upper()) is not None


def is_country(v: str) -> bool:
    s = v.strip()
    return s in COUNTRIES_2 or s in COUNTRIES_3 or s.lower() in COUNTRY_NAMES


def is_currency(v: str) -> bool:
    return v.strip() in CURRENCIES


def is_place(v: str) -> bool:
    return PLACE.fullmatch(v.strip()) is not None and not any(ch.isdigit() for ch in v)


def is_person_name(v: str) -> bool:
    return PERSON_NAME.fullmatch(v.strip()) is not None


def share(values: ColumnValues, test: Callable[[str], bool]) -> float:
    """Estimated share of non-null rows whose value passes `test`.

    Two strata: the top values, counted exactly, and the rest, whose share is measured on
    a uniform pseudo-random set of their distinct values (weighted by their counts).
    """
    top_values = {v for v, _ in values.top}
    hits = float(sum(k for v, k in values.top if test(v)))
    total = values.non_null or sum(k for _, k in values.top)
    rest = [(v, k) for v, k in values.others if v not in top_values]
    rest_rows = total - sum(k for _, k in values.top)
    sampled_rows = sum(k for _, k in rest)
    if rest and rest_rows > 0 and sampled_rows:
        hits += rest_rows * sum(k for v, k in rest if test(v)) / sampled_rows
    return min(1.0, hits / total) if total else 0.0


# Detectors tried on text values, in order; the first that qualifies wins.
TEXT_DETECTORS: tuple[tuple[str, Callable[[str], bool]], ...] = (
    ("email", is_email),
    ("url", is_url),
    ("card_number", is_card),
    ("ip_address", is_ip),
    ("phone", is_phone),
    ("country", is_country),
    ("currency", is_currency),
    ("postal_code", is_postal),
    ("person_name", is_person_name),
)


def classify(table: TableSnapshot, column: ColumnSnapshot, values: ColumnValues | None) -> Semantic:
    """The semantic type, PII flag and validity of one column."""
    name = column.name.lower()
    result = _classify(table, column, name, values)
    if result.type in PII_TYPES:
        result.pii = True
    elif PERSONAL_NAME_ONLY.search(name):
        result.pii = True
        result.reasons.append(f"the name {column.name!r} suggests personal data")
    return result


def _classify(
    table: TableSnapshot, column: ColumnSnapshot, name: str, values: ColumnValues | None
) -> Semantic:
    family = column.family
    if family == "network":
        return Semantic("ip_address", 1.0, [f"type {column.data_type}"], validity=1.0)
    if family == "bool":
        return Semantic("boolean_flag", 0.95, [f"type {column.data_type}"])
    if family in ("time", "date"):
        return _time(column, name)
    if family == "interval":
        return Semantic("duration", 0.9, [f"type {column.data_type}"])
    key = _key_reason(table, column)
    if family in ("integer", "number"):
        return _number_type(table, column, name, key)
    if family == "uuid":
        return Semantic("identifier", 0.9, [f"type {column.data_type}"])
    if family in ("text", "other") and values is not None and values.non_null > 0:
        found = _detect_text(table, column, name, values)
        if found is not None:
            return found
    if family == "text" and CITY_NAME.search(name) and values is not None and values.non_null > 0:
        fraction = share(values, is_place)
        if fraction >= WITH_NAME:
            return Semantic(
                "city",
                round(min(1.0, 0.5 + 0.45 * fraction), 3),
                [
                    f"{fraction:.0%} of sampled values look like place names",
                    f"the name {column.name!r} agrees",
                ],
            )
    if family == "text":
        label = _label(table, column, name, key)
        if label is not None:
            return label
    if family in ("text", "other") and (key or (ID_NAME.search(name) and _mostly_distinct(column))):
        return Semantic("identifier", 0.9 if key else 0.6, [key or f"distinct codes in {column.name!r}"])
    if family == "other" and (column.data_type.endswith("[]") or column.data_type in ("json", "jsonb")):
        return Semantic()  # arrays and documents: no single value to group by
    return _category(column, name) or Semantic()


def _time(column: ColumnSnapshot, name: str) -> Semantic:
    what = f"a {column.data_type} named {column.name!r}"
    if CREATED_NAME.search(name):
        return Semantic("created_at", 0.9, [what, "a creation time"])
    if UPDATED_NAME.search(name):
        return Semantic("updated_at", 0.9, [what, "an update time"])
    confidence = 0.8 if EVENT_NAME.search(name) else 0.6
    return Semantic("event_time", confidence, [what, "a point in time that is not creation or update"])


def _number_type(table: TableSnapshot, column: ColumnSnapshot, name: str, key: str | None) -> Semantic:
    """Identifiers, geo coordinates, the kinds of measure, and small-valued categories."""
    family = column.family
    what = f"a {column.data_type} named {column.name!r}"
    if key:
        return Semantic("identifier", 0.9, [key])
    if family == "integer" and ID_NAME.search(name):
        return Semantic("identifier", 0.6, [f"an integer named {column.name!r}"])
    span = _span(column)
    if LATITUDE_NAME.search(name) and (span is None or (-90 <= span[0] and span[1] <= 90)):
        return Semantic("latitude", 0.9, [what, "values within ±90" if span else "no values to check"])
    if LONGITUDE_NAME.search(name) and (span is None or (-180 <= span[0] and span[1] <= 180)):
        return Semantic("longitude", 0.9, [what, "values within ±180" if span else "no values to check"])
    if PERCENT_NAME.search(name):
        fits = span is None or (span[0] >= 0 and span[1] <= 100)
        return Semantic(
            "percentage", 0.85 if fits else 0.6, [what, "values within 0..100" if fits else "named so"]
        )
    if DURATION_NAME.search(name):
        return Semantic("duration", 0.8, [what, "a time unit or span in the name"])
    two_decimals = column.data_type.startswith("numeric(") and column.data_type.endswith(",2)")
    if (
        column.data_type == "money"
        or (MONEY_NAME.search(name) and (family == "number" or CENTS.search(name)))
        or (two_decimals and VALUE_NAME.search(name))
    ):
        return Semantic("money", 0.85 if column.data_type == "money" else 0.8, [what])
    if QUANTITY_NAME.search(name):
        return Semantic("quantity", 0.8, [what, "a count of things"])
    if YEAR_NAME.search(name) and (span is None or (1800 <= span[0] and span[1] <= 2200)):
        return Semantic("category", 0.7, [what, "a year: grouped, not summed"])
    category = _category(column, name)
    if category is not None:
        return category
    distinct = _distinct(column)
    if family == "integer" and distinct is not None and distinct <= 12 and not MEASURE_NAME.search(name):
        return Semantic("category", 0.6, [f"an integer with only {int(distinct)} distinct values"])
    if span is not None and span[0] == span[1]:
        return Semantic()  # one value: nothing to measure
    unit = UNIT_NAME.search(name)
    reasons = [what, "a number that is not a key"]
    if unit:
        reasons.append(f"unit {unit.group(2)!r} in the name")
    return Semantic("measure", 0.7 if unit or family == "number" else 0.5, reasons)


def _span(column: ColumnSnapshot) -> tuple[float, float] | None:
    profile = column.profile
    if profile is None or profile.min is None or profile.max is None:
        return None
    try:
        return float(profile.min.value), float(profile.max.value)
    except (TypeError, ValueError):
        return None


def _label(table: TableSnapshot, column: ColumnSnapshot, name: str, key: str | None) -> Semantic | None:
    """A human-readable name of the table's rows: named like one, and mostly distinct."""
    if not LABEL_NAME.search(name) or ID_NAME.search(name):
        return None
    if key:
        return Semantic("label", 0.9, [f"a {column.data_type} named {column.name!r}", key])
    distinct = _distinct(column)
    non_null = _non_null_rows(column, table.rows)
    if distinct is None or not non_null:
        return Semantic("label", 0.6, [f"a {column.data_type} named {column.name!r}"])
    ratio = min(1.0, distinct / non_null)
    if ratio >= 0.5:
        return Semantic(
            "label",
            round(0.6 + 0.3 * ratio, 3),
            [f"a {column.data_type} named {column.name!r}", f"{ratio:.0%} distinct"],
        )
    return None  # a name repeated across rows: a category (below)


def _detect_text(
    table: TableSnapshot, column: ColumnSnapshot, name: str, values: ColumnValues
) -> Semantic | None:
    for semantic, test in TEXT_DETECTORS:
        hinted = semantic in NAME_HINTS and NAME_HINTS[semantic].search(name) is not None
        if semantic == "person_name":
            hinted = NAME_PERSON.search(name) is not None or (
                name == "name" and PERSON_TABLES.search(table.name.lower()) is not None
            )
            if not hinted:
                continue
        if semantic == "phone" and not hinted:
            test = is_marked_phone
        if semantic == "postal_code" and not hinted:
            continue
        if semantic in ("country", "currency") and not hinted and _distinct(column) > 400:
            continue
        fraction = share(values, test)
        if fraction >= STRONG or (hinted and fraction >= WITH_NAME):
            reasons = [f"{fraction:.0%} of sampled values look like {semantic.replace('_', ' ')}"]
            if hinted:
                reasons.append(f"the name {column.name!r} agrees")
            confidence = round(min(1.0, fraction * (1.0 if hinted else 0.9) + (0.05 if hinted else 0)), 3)
            return Semantic(semantic, confidence, reasons, validity=round(fraction, 6))
    return None


def _key_reason(table: TableSnapshot, column: ColumnSnapshot) -> str | None:
    if column.name in table.primary_key:
        return "part of the primary key"
    if [column.name] in table.unique_constraints:
        return "unique"
    return None


def _distinct(column: ColumnSnapshot) -> float:
    profile = column.profile
    if profile is None or profile.distinct_count is None:
        return 0.0
    return float(profile.distinct_count.value or 0)


def _non_null_rows(column: ColumnSnapshot, table_rows: float | None) -> float | None:
    profile = column.profile
    if profile is None or table_rows is None:
        return None
    null_fraction = profile.null_fraction.value if profile.null_fraction else 0.0
    return table_rows * (1 - float(null_fraction))


def _mostly_distinct(column: ColumnSnapshot) -> bool:
    profile = column.profile
    if profile is None or profile.distinct_count is None or profile.top_values is None:
        return False
    top = profile.top_values.value or []
    return bool(top) and float(top[0][1]) < 0.01


def _category(column: ColumnSnapshot, name: str) -> Semantic | None:
    """Low cardinality: few distinct values, each repeated many times."""
    profile = column.profile
    if profile is None or profile.distinct_count is None:
        return None
    distinct = float(profile.distinct_count.value or 0)
    top = profile.top_values.value if profile.top_values else []
    covered = sum(float(f) for _, f in top or [])
    null_fraction = float(profile.null_fraction.value) if profile.null_fraction else 0.0
    if distinct < 1 or null_fraction >= 1:
        return None
    if distinct < 2:
        return None  # one value carries no information (quality says so)
    small = distinct <= 50 and covered >= 0.5 * (1 - null_fraction)
    if column.family == "integer" and not CATEGORY_NAME.search(name):
        return None
    if small and (column.family != "number"):
        return Semantic("category", 0.8, [f"{int(distinct)} distinct values cover the column"])
    return None


def mask(semantic: str | None, value: str) -> str:
    """A PII value as the catalog may show it: enough to recognise the shape, not the person."""
    if semantic == "email" and "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if semantic in ("card_number", "phone"):
        digits = [c for c in value if c.isdigit()]
        keep = 4 if semantic == "card_number" else 2
        shown = "".join(digits[-keep:])
        return "*" * max(len(digits) - keep, 0) + shown
    if semantic == "ip_address":
        if "." in value:
            parts = value.split(".")
            return ".".join(parts[:2] + ["*"] * (len(parts) - 2))
        return value.split(":")[0] + ":*"
    return value[:1] + "***" if value else value


def mask_profile(column: ColumnSnapshot) -> None:
    """Replace raw values in a PII column's profile (top values, min, max) by masked ones."""
    profile = column.profile
    if profile is None or not column.pii:
        return
    for figure in (profile.min, profile.max):
        if figure is not None and isinstance(figure.value, str):
            figure.value = mask(column.semantic_type, figure.value)
    if profile.top_values is not None:
        merged: dict[str, float] = {}
        for value, frequency in profile.top_values.value or []:
            shown = mask(column.semantic_type, str(value))
            merged[shown] = merged.get(shown, 0.0) + float(frequency)
        profile.top_values.value = [[v, round(f, 6)] for v, f in merged.items()]


# Inferred relationships at least this confident make their columns identifiers.
REFERENCE_CONFIDENCE = 0.7


def mark_references(tables: list[TableSnapshot], relationships: list[Relationship]) -> None:
    """Columns that reference a key hold identifiers, whatever their values looked like:
    a number column typed measure or category (or nothing) by its values becomes one, so
    it is counted, not summed. Text columns keep a category type (one groups by origin
    depot as well as one joins on it); PII keeps its type."""
    by_key = {t.key: t for t in tables}
    for rel in relationships:
        if not rel.declared and rel.confidence < REFERENCE_CONFIDENCE:
            continue
        table = by_key.get((rel.from_schema, rel.from_table))
        if table is None:
            continue
        for name in rel.from_columns:
            column = table.column(name)
            if column is None or column.pii or column.semantic_type == "identifier":
                continue
            numeric = column.family in ("integer", "number")
            if column.semantic_type is not None and not numeric:
                continue
            column.semantic_type = "identifier"
            column.semantic_confidence = max(0.7, round(rel.confidence * 0.95, 3))
            column.semantic_reasons = [
                f"references {rel.to_table}({', '.join(rel.to_columns)})"
                + (" (declared)" if rel.declared else f" (confidence {rel.confidence:.2f})")
            ]
