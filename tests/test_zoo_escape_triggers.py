"""Each store of tests/zoo/escapes.py and escapes3.py to escapes12b.py misbehaves at its trigger, called directly (not
through the suite)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from aether_conformance import Timestamp, VersionConflictError
from aether_conformance.errors import go_quote
from aether_conformance.suite.support import new_event, new_snapshot

from tests.children import escapes8d
from tests.zoo import escapes as stores
from tests.zoo import (escapes3, escapes4, escapes5, escapes6a, escapes6b, escapes7a, escapes7b, escapes7c, escapes9a, escapes10a,
                       escapes10b, escapes11a, escapes12b)


def fresh(name):
    return getattr(stores, name)


def saved(store, actor, version, **fields):
    store.save_event(new_event(actor, version, **fields))


def check_utf16_key_slice_256():
    s = fresh("utf16_key_slice_256")()
    saved(s, "🦀" * 200 + "a", 1)
    return s.get_latest_version("🦀" * 200 + "b") == 1


def check_long_ids_shortened_by_crc32():
    s = fresh("long_ids_shortened_by_crc32")()
    saved(s, "p" * 200 + "plumless", 1)
    return s.get_latest_version("p" * 200 + "buckeroo") == 1


def check_astral_chars_as_question_marks():
    s = fresh("astral_chars_as_question_marks")()
    saved(s, "acct-🦀", 1)
    return s.get_latest_version("acct-🎉") == 1


def check_windows_device_names():
    s = fresh("windows_device_names")()
    saved(s, "COM3", 1)
    return s.get_latest_version("COM3") == 0 and s.get_events("COM3", 0) == []


def check_actor_passivation_loses_version():
    s = fresh("actor_passivation_loses_version")()
    for v in (1, 2, 3):
        saved(s, "A", v)
    for i in range(10_000):
        s.get_latest_version(f"other-{i}")
    return s.get_latest_version("A") == 0


def check_cross_actor_reused_id_dropped():
    s = fresh("cross_actor_reused_id_dropped")()
    saved(s, "A", 1, id="E")
    saved(s, "B", 1, id="E")  # acknowledged
    return s.get_events("B", 0) == []


def check_bson_int64_overflow():
    s = fresh("bson_int64_overflow")()
    try:
        saved(s, "A", 1, data={"n": 2**63})
    except OverflowError:
        return True
    return False


def check_unsafe_integers_as_strings():
    s = fresh("unsafe_integers_as_strings")()
    saved(s, "A", 1, data={"n": 2**53 + 1})
    return s.get_events("A", 0)[0].data == {"n": "9007199254740993"}


def check_proto_key_dropped():
    s = fresh("proto_key_dropped")()
    saved(s, "A", 1, data={"__proto__": {"x": 1}, "a": 1})
    return s.get_events("A", 0)[0].data == {"a": 1}


def check_json_lines_splitlines():
    s = fresh("json_lines_splitlines")()
    saved(s, "A", 1)
    saved(s, "A", 2, data={"s": "a\u2028b"})
    return s.get_events("A", 0)[-1].version == 1 and s.get_latest_version("A") == 1


def check_offset_cut_to_minutes():
    s = fresh("offset_cut_to_minutes")()
    lmt = Timestamp.from_datetime(datetime(1900, 1, 1, tzinfo=timezone(timedelta(minutes=19, seconds=32))))
    saved(s, "A", 1, timestamp=lmt)
    return s.get_events("A", 0)[0].timestamp - lmt == timedelta(seconds=32)


def check_session_zone_lost_after_recycle():
    s = fresh("session_zone_lost_after_recycle")()
    for v in range(1, 30_002):
        saved(s, "A", v)
    first, last = s.get_events("A", 0)[0], s.get_events("A", 30_001)[0]
    expected = new_event("A", 30_001).timestamp
    return first.timestamp == new_event("A", 1).timestamp and last.timestamp - expected in (
        timedelta(hours=4), timedelta(hours=5))


def check_signed_big_endian_snapshot_keys():
    s = fresh("signed_big_endian_snapshot_keys")()
    saved(s, "A", 3)
    s.save_snapshot(new_snapshot("A", 3))
    s.save_snapshot(new_snapshot("A", -1))
    return s.get_latest_snapshot("A").version == -1


def check_handle_snapshot_cache():
    make = fresh("handle_snapshot_cache")
    h1, h2 = make(), make()
    saved(h1, "A", 1)
    saved(h1, "A", 2)
    h1.save_snapshot(new_snapshot("A", 1))
    h2.get_latest_snapshot("A")
    h1.save_snapshot(new_snapshot("A", 2))
    return h2.get_latest_snapshot("A").version == 1


def check_snapshot_archives_beyond_1000():
    s = fresh("snapshot_archives_beyond_1000")()
    for v in range(1, 1002):
        saved(s, "A", v)
    s.save_snapshot(new_snapshot("A", 1001))
    return s.get_events("A", 0)[0].version == 2


def check_replacement_char_escaped():
    s = fresh("replacement_char_escaped")()
    actor = "a\ufffdb"
    saved(s, actor, 1)
    try:
        saved(s, actor, 1)
    except VersionConflictError as error:
        go_text = f"version conflict: actor {go_quote(actor)} has version 1, cannot save version 1"
        return str(error) != go_text and "\\ufffd" in str(error)
    return False


def check_actor_document_16mib():
    s = fresh("actor_document_16mib")()
    blob = {"blob": "x" * 400_000}
    try:
        for v in range(1, 43):
            saved(s, "A", v, data=blob)
    except stores.ActorDocument16MiB.DocumentTooLarge:
        return v == 42
    return False


def check_torn_payload_reads():
    import threading
    s = fresh("torn_payload_reads")()
    torn = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            torn.extend(e for e in s.get_events("A", 0) if e.data is None)

    reader = threading.Thread(target=read)
    reader.start()
    for v in range(1, 200):
        saved(s, "A", v)
    stop.set()
    reader.join()
    return bool(torn) and all(e.data is not None for e in s.get_events("A", 0))


def _shared_key(name, left, right):
    s = fresh(name)()
    saved(s, left, 1)
    return s.get_latest_version(right) == 1


def check_xml_attribute_whitespace():
    return _shared_key("xml_attribute_whitespace", "a\tb", "a b")


def check_plus_decoded_as_space():
    return _shared_key("plus_decoded_as_space", "a+b", "a b")


def check_backslash_is_slash():
    return _shared_key("backslash_is_slash", "a\\b", "a/b")


def check_js_date_reviver():
    s = fresh("js_date_reviver")()
    saved(s, "A", 1, data={"at": "2024-01-02T03:04:05Z"})
    return s.get_events("A", 0)[0].data == {"at": "2024-01-02T03:04:05.000Z"}


def check_php_sequential_keys_become_list():
    s = fresh("php_sequential_keys_become_list")()
    saved(s, "A", 1, data={"m": {"0": "a", "1": "b"}})
    return s.get_events("A", 0)[0].data == {"m": ["a", "b"]}


def check_nul_in_keys_refused():
    s = fresh("nul_in_keys_refused")()
    try:
        saved(s, "A", 1, data={"a\x00b": 1})
    except stores.NulInKeysRefused.DataError:
        return True
    return False


def check_snapshot_ttl_120s():
    s = fresh("snapshot_ttl_120s")()
    saved(s, "A", 1)
    s.save_snapshot(new_snapshot("A", 1))
    s.shared.saved_at["A"] -= 121  # two minutes on, without waiting them
    return s.get_latest_snapshot("A") is None


def check_drops_empty_in_place():
    s = fresh("drops_empty_in_place")()
    event = new_event("A", 1, data={"a": [], "b": 1})
    s.save_event(event)
    return event.data == {"b": 1} and s.get_events("A", 0)[0].data == {"b": 1}


@pytest.mark.parametrize("name", sorted(stores.TRIGGERS))
def test_store_misbehaves_at_its_trigger(name):
    assert globals()[f"check_{name}"]() is True


@pytest.mark.parametrize("name", sorted(escapes3.TRIGGERS))
def test_third_review_store_misbehaves_at_its_trigger(name):
    assert escapes3.TRIGGERS[name]() is True


@pytest.mark.parametrize("name", sorted(escapes4.TRIGGERS))
def test_fourth_review_store_misbehaves_at_its_trigger(name):
    assert escapes4.TRIGGERS[name]() is True


@pytest.mark.parametrize("name", sorted(escapes5.TRIGGERS))
def test_fifth_review_store_misbehaves_at_its_trigger(name):
    assert escapes5.TRIGGERS[name]() is True


@pytest.mark.parametrize("name", sorted(escapes6a.TRIGGERS))
def test_sixth_review_asyncio_store_misbehaves_at_its_trigger(name):
    assert escapes6a.TRIGGERS[name]() is True


@pytest.mark.parametrize("name", sorted(escapes6b.TRIGGERS))
def test_sixth_review_backend_store_misbehaves_at_its_trigger(name):
    assert escapes6b.TRIGGERS[name]() is True


@pytest.mark.parametrize("module, name", [(module, name) for module in (escapes7a, escapes7b, escapes7c)
                          for name in sorted(module.TRIGGERS)],
                         ids=lambda value: value if isinstance(value, str) else value.__name__.rpartition(".")[2])
def test_seventh_review_store_misbehaves_at_its_trigger(module, name):
    assert module.TRIGGERS[name]() is True


@pytest.mark.parametrize("mode", sorted(escapes8d.TRIGGERS))
def test_eighth_review_child_misbehaves_at_its_trigger(mode):
    assert escapes8d.TRIGGERS[mode]() is True


@pytest.mark.parametrize("name", sorted(escapes9a.TRIGGERS))
def test_ninth_review_store_misbehaves_at_its_trigger(name):
    assert escapes9a.TRIGGERS[name]() is True


@pytest.mark.parametrize("store", [f"escapes10a:{name}" for name in sorted(escapes10a.TRIGGERS)]
                         + [f"escapes10b:{name}" for name in sorted(escapes10b.TRIGGERS)])
def test_tenth_review_store_misbehaves_at_its_trigger(store):
    module, name = store.split(":")
    assert (escapes10a if module == "escapes10a" else escapes10b).TRIGGERS[name]() is True


@pytest.mark.parametrize("name", sorted(escapes11a.TRIGGERS))
def test_eleventh_review_store_misbehaves_at_its_trigger(name):
    assert escapes11a.TRIGGERS[name]() is True


@pytest.mark.parametrize("name", sorted(escapes12b.TRIGGERS))
def test_twelfth_review_store_misbehaves_at_its_trigger(name):
    assert escapes12b.TRIGGERS[name]() is True
