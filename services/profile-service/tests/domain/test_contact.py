import pytest

from profile_service.domain.contact import (
    InvalidContact,
    normalize_email,
    normalize_locale,
    normalize_phone,
    normalize_tags,
    normalize_time_zone,
)


def rejection(func, *args) -> InvalidContact:
    """The InvalidContact that calling ``func(*args)`` raises."""
    with pytest.raises(InvalidContact) as caught:
        func(*args)
    return caught.value


# Email


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("ann@example.com", "ann@example.com"),
        ("Ann@X.com", "ann@x.com"),
        ("  ANN.Lee+shop@Example.COM \n", "ann.lee+shop@example.com"),
        ("Ünïcode@Bücher.de", "ünïcode@bücher.de"),
    ],
)
def test_email_is_stored_trimmed_and_lower_cased(raw, stored):
    assert normalize_email(raw) == stored


@pytest.mark.parametrize("raw", ["ann", "ann@", "@example.com", "a..b@example.com", "a@x.com>"])
def test_malformed_email_is_rejected_with_a_reason(raw):
    error = rejection(normalize_email, raw)
    assert error.field == "email"
    assert error.code == "invalid_email"
    assert str(error) == error.reason
    assert error.reason.startswith("not a valid email address: ")


def test_empty_email_is_rejected_as_empty():
    assert rejection(normalize_email, "   ").reason == "email address is empty"


def test_email_rejection_does_not_repeat_the_address():
    # Reasons reach import reports and logs, where personal data must not appear.
    assert "secret.person" not in rejection(normalize_email, "secret.person@@mail.com").reason


# Phone


@pytest.mark.parametrize(
    ("raw", "region", "stored"),
    [
        ("(201) 555-0123", "US", "+12015550123"),
        ("030 1234567", "DE", "+49301234567"),
        ("030 1234567", "de", "+49301234567"),
        ("+49 30 1234567", None, "+49301234567"),
        ("0049 30 1234567", None, "+49301234567"),
        ("+49 30 1234567", "US", "+49301234567"),
    ],
)
def test_phone_is_stored_in_e164(raw, region, stored):
    assert normalize_phone(raw, region) == stored


def test_national_number_without_default_region_needs_a_country_code():
    error = rejection(normalize_phone, "030 1234567", None)
    assert error.field == "phone"
    assert error.reason == "needs a country code (+...) because no default region is set"


def test_number_invalid_for_the_default_region_names_the_region():
    assert rejection(normalize_phone, "12", "DE").reason == "not a valid number for region DE"


def test_international_number_invalid_for_its_country_names_that_country():
    assert rejection(normalize_phone, "+1 200 555 0123", None).reason == (
        "not a valid number for region US"
    )


def test_unknown_country_code_is_named():
    assert rejection(normalize_phone, "+999 1234567", None).reason == (
        "the country code after '+' is not known"
    )


@pytest.mark.parametrize("raw", ["call me", "+", "++49"])
def test_text_that_is_no_number_is_rejected(raw):
    assert rejection(normalize_phone, raw, "DE").reason == "not a phone number"


def test_unknown_default_region_is_rejected():
    assert "not a known region" in rejection(normalize_phone, "030 1234567", "XX").reason


# Time zone


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("Europe/Berlin", "Europe/Berlin"),
        ("  europe/berlin ", "Europe/Berlin"),
        ("America/Argentina/Buenos_Aires", "America/Argentina/Buenos_Aires"),
        ("UTC", "UTC"),
        ("US/Eastern", "US/Eastern"),
    ],
)
def test_time_zone_is_stored_with_its_iana_name(raw, stored):
    assert normalize_time_zone(raw) == stored


@pytest.mark.parametrize("raw", ["", "Mars/Olympus_Mons", "America", "../etc/passwd", "localtime"])
def test_unknown_time_zone_is_rejected(raw):
    assert rejection(normalize_time_zone, raw).field == "time_zone"


# Locale


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("en", "en"),
        ("EN", "en"),
        ("en-US", "en-US"),
        ("en_us", "en-US"),
        ("pt-br", "pt-BR"),
        ("zh-hant-tw", "zh-Hant-TW"),
        ("zh_HANT", "zh-Hant"),
        ("es-419", "es-419"),
        ("fil-PH", "fil-PH"),
    ],
)
def test_locale_is_stored_as_a_canonical_language_tag(raw, stored):
    assert normalize_locale(raw) == stored


@pytest.mark.parametrize("raw", ["", "e", "english", "en-USA", "en-U", "en-US-x", "en--US", "12"])
def test_malformed_locale_is_rejected(raw):
    assert rejection(normalize_locale, raw).field == "locale"


# Tags


def test_tags_are_trimmed_lower_cased_and_deduplicated_in_first_seen_order():
    assert normalize_tags(
        [" VIP", "source:shopify", "", "vip ", "  ", "b2b-lead", "SOURCE:Shopify"]
    ) == [
        "vip",
        "source:shopify",
        "b2b-lead",
    ]


def test_no_tags_is_an_empty_list():
    assert normalize_tags([]) == []


@pytest.mark.parametrize("raw", ["two words", "café", "a/b", "x" * 65])
def test_tag_outside_the_allowed_alphabet_or_length_is_rejected(raw):
    assert rejection(normalize_tags, [raw]).field == "tags"


def test_tag_of_exactly_64_characters_is_accepted():
    assert normalize_tags(["x" * 64]) == ["x" * 64]


def test_a_single_string_is_not_mistaken_for_a_list_of_one_letter_tags():
    with pytest.raises(TypeError):
        normalize_tags("vip")
