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
from uds.discovery.snapshot import PII_TYPES, ColumnSnapshot, TableSnapshot

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
    if family in ("time", "date"):
        if CREATED_NAME.search(name):
            return Semantic("created_at", 0.9, [f"a {column.data_type} named {column.name!r}"])
        if UPDATED_NAME.search(name):
            return Semantic("updated_at", 0.9, [f"a {column.data_type} named {column.name!r}"])
        return Semantic()
    key = _key_reason(table, column)
    if family in ("integer", "number"):
        if column.data_type == "money" or (MONEY_NAME.search(name) and not key and family == "number"):
            return Semantic("money", 0.8, [f"a {column.data_type} named {column.name!r}"])
        if key or (family == "integer" and ID_NAME.search(name)):
            return Semantic("identifier", 0.9 if key else 0.6, [key or f"an integer named {column.name!r}"])
        return _category(column, name) or Semantic()
    if family == "uuid":
        return Semantic("identifier", 0.9, [f"type {column.data_type}"])
    if family in ("text", "other") and values is not None and values.non_null > 0:
        found = _detect_text(table, column, name, values)
        if found is not None:
            return found
    if family in ("text", "other") and (key or (ID_NAME.search(name) and _mostly_distinct(column))):
        return Semantic("identifier", 0.9 if key else 0.6, [key or f"distinct codes in {column.name!r}"])
    return _category(column, name) or Semantic()


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
    if column.family == "bool":
        return Semantic("category", 0.9, ["boolean"])
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
