"""Each subtle specimen really has its flaw: driven directly at its trigger, it misbehaves.

The CLI test in test_zoo.py measures the suite against the subtle zoo; that
measure means something only if every specimen is broken where its docstring
says (and, where cheap to show, right on everyday inputs).  These checks drive
each specimen in-process, in milliseconds, without the suite.
"""

from __future__ import annotations

import gc
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest

import tests.zoo.subtle as _z
from aether_conformance import ActorSnapshot, Event, VersionConflictError, json_equal


class _Fresh:
    """``z.name()`` is a handle of a fresh store of specimen ``name`` (each check starts empty)."""

    def __getattr__(self, name):
        store_class, state_class = _z._STORES[name]
        return _z.factory(store_class, state_class)


z = _Fresh()

T = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
n = 0
def ev(actor, v, **kw):
    global n; n += 1
    base = dict(id=f"e{n}", event_type="t", actor_id=actor, version=v, data={"k": 1}, timestamp=T)
    base.update(kw); return Event(**base)
def snap(actor, v, state=None, ts=T): return ActorSnapshot(actor_id=actor, version=v, state=state or {"s": 1}, timestamp=ts)
def saves(store, *events):
    for e in events: store.save_event(e)
def conflict(store, e):
    try: store.save_event(e)
    except VersionConflictError as err: return err
    return None
def roundtrip(name, **kw):
    s = getattr(z, name)(); e = ev("rt-" + name, 1, **kw); s.save_event(e)
    got = s.get_events(e.actor_id, 0)
    return got == [e] and all(json_equal(g.data, e.data) for g in got)
def pair_crosstalk(name, a, b):
    s = getattr(z, name)(); s.save_event(ev(a, 5))
    return s.get_events(b, 0) != [] or s.get_latest_version(b) != 0
def deep(n):
    d = {}
    for _ in range(n - 1): d = {"a": d}
    return d
B53 = 2**53
def ts_roundtrip(name, stamp):
    s = getattr(z, name)(); e = ev("ts", 1, timestamp=stamp); s.save_event(e)
    got = s.get_events("ts", 0)[0].timestamp
    return got == stamp  # instant equality
checks = {}
def check(name):
    def deco(fn): checks[name] = fn; return fn
    return deco

def racing_check(name, attempts=20):
    # A race shows only when the threads overlap, which a busy machine may not schedule in one
    # attempt: any attempt (each on a fresh store) showing the bug proves the specimen broken.
    def deco(fn): checks[name] = lambda: any(fn() for _ in range(attempts)); return fn
    return deco

@check("like_wildcard_reads")
def _(): return pair_crosstalk("like_wildcard_reads", "orderA1", "order_1") and not pair_crosstalk("like_wildcard_reads", "orderA1", "orderB1")
@check("like_wildcard_latest")
def _(): return pair_crosstalk("like_wildcard_latest", "abc", "a%")
@check("like_wildcard_snapshots")
def _():
    s = z.like_wildcard_snapshots(); s.save_snapshot(snap("axb", 3)); return s.get_latest_snapshot("a_b") is not None
@check("zset_float_score_reads")
def _():
    s = z.zset_float_score_reads(); saves(s, ev("a", B53), ev("a", B53 + 1)); return [e.version for e in s.get_events("a", B53 + 1)] != [B53 + 1]
@check("zset_float_score_latest")
def _():
    s = z.zset_float_score_latest(); saves(s, ev("a", B53 + 1)); return s.get_latest_version("a") != B53 + 1 and conflict(s, ev("a", B53 + 1)) is None
@check("zset_float_score_snapshots")
def _():
    s = z.zset_float_score_snapshots(); s.save_snapshot(snap("a", B53)); s.save_snapshot(snap("a", B53 + 1)); return s.get_latest_snapshot("a").version == B53
@check("padded_key_reads")
def _():
    s = z.padded_key_reads(); saves(s, ev("a", 9_999_999_999), ev("a", 10**10)); return [e.version for e in s.get_events("a", 0)] != [9_999_999_999, 10**10]
@check("padded_key_latest")
def _():
    s = z.padded_key_latest(); saves(s, ev("a", 9_999_999_999), ev("a", 10**10)); return s.get_latest_version("a") == 9_999_999_999
@check("padded_key_snapshots")
def _():
    s = z.padded_key_snapshots(); s.save_snapshot(snap("a", 9_999_999_999)); s.save_snapshot(snap("a", 10**10)); return s.get_latest_snapshot("a").version != 10**10
@check("int32_from_version")
def _():
    s = z.int32_from_version(); saves(s, ev("a", B53), ev("a", B53 + 1)); return len(s.get_events("a", B53 + 1)) == 2
@check("int32_snapshot_order")
def _():
    s = z.int32_snapshot_order(); s.save_snapshot(snap("a", 5)); s.save_snapshot(snap("a", 2**31)); return s.get_latest_snapshot("a").version == 5
@check("int32_conflict_current_version")
def _():
    s = z.int32_conflict_current_version(); saves(s, ev("a", 2**31)); return conflict(s, ev("a", 2**31)).current_version != 2**31
def long_stream(name, count):
    s = getattr(z, name)()
    for v in range(1, count + 1): s.save_event(Event(id=f"l{v}", event_type="t", actor_id="long", version=v, data=None, timestamp=T))
    return s
@check("search_window_10000")
def _(): return len(long_stream("search_window_10000", 10_001).get_events("long", 0)) == 10_000
@check("window_65536")
def _(): return len(long_stream("window_65536", 65_537).get_events("long", 0)) == 65_536
@check("page_1000_repeats_boundary")
def _(): return len(long_stream("page_1000_repeats_boundary", 1000).get_events("long", 0)) == 1001
@check("page_100_skips_boundary")
def _(): return len(long_stream("page_100_skips_boundary", 150).get_events("long", 0)) == 149
@check("latest_from_first_page")
def _(): return long_stream("latest_from_first_page", 101).get_latest_version("long") == 100
@check("varchar64_event_type")
def _(): return not roundtrip("varchar64_event_type", event_type="t" * 65) and roundtrip("varchar64_event_type", event_type="t" * 64)
@check("varchar255_command_id")
def _(): return not roundtrip("varchar255_command_id", command_id="c" * 256)
@check("varchar255_bytes_event_id")
def _(): return not roundtrip("varchar255_bytes_event_id", id="é" * 200) and roundtrip("varchar255_bytes_event_id", id="e" * 255)
@check("actor_key_128_chars")
def _(): return pair_crosstalk("actor_key_128_chars", "x" * 128 + "a", "x" * 128 + "b")
@check("actor_key_255_bytes")
def _(): return pair_crosstalk("actor_key_255_bytes", "x" * 255 + "a", "x" * 255 + "b") and not pair_crosstalk("actor_key_255_bytes", "x" * 254 + "a", "x" * 254 + "b")
@check("snapshot_key_64_chars")
def _():
    s = z.snapshot_key_64_chars(); s.save_snapshot(snap("x" * 64 + "a", 3)); return s.get_latest_snapshot("x" * 64 + "b") is not None
@check("text_64kib_data")
def _(): return not roundtrip("text_64kib_data", data={"k": "x" * 70000})
@check("text_64kib_state")
def _():
    s = z.text_64kib_state(); s.save_snapshot(snap("a", 1, {"k": "x" * 70000})); return s.get_latest_snapshot("a").state is None
@check("depth_48_nulls_data")
def _(): return not roundtrip("depth_48_nulls_data", data=deep(49)) and roundtrip("depth_48_nulls_data", data=deep(48))
@check("depth_32_nulls_state")
def _():
    s = z.depth_32_nulls_state(); s.save_snapshot(snap("a", 1, deep(40))); return s.get_latest_snapshot("a").state is None
@check("ttl_latest_counter")
def _():
    s = z.ttl_latest_counter(); saves(s, ev("a", 3)); ok = s.get_latest_version("a") == 3; time.sleep(1.1); return ok and s.get_latest_version("a") == 0 and conflict(s, ev("a", 1)) is None
@check("ttl_latest_counter_8s")
def _():
    s = z.ttl_latest_counter_8s(); saves(s, ev("a", 3)); ok = s.get_latest_version("a") == 3; time.sleep(8.1); return ok and s.get_latest_version("a") == 0
@check("lru_evicts_streams")
def _():
    s = z.lru_evicts_streams(); saves(s, ev("first", 1))
    for i in range(300): s.get_latest_version(f"other{i}")
    return s.get_events("first", 0) == []
@check("cache_invalidates_one_key")
def _():
    s = z.cache_invalidates_one_key(); saves(s, ev("a", 1)); s.get_events("a", 1); saves(s, ev("a", 2)); return len(s.get_events("a", 1)) == 1 and len(s.get_events("a", 0)) == 2
@check("nfc_actor_ids")
def _(): return pair_crosstalk("nfc_actor_ids", "e\u0301", "\u00e9")
@check("nfkc_actor_ids")
def _(): return pair_crosstalk("nfkc_actor_ids", "\uff21", "A") and not pair_crosstalk("nfkc_actor_ids", "A", "a")
@check("accent_insensitive_ids")
def _(): return pair_crosstalk("accent_insensitive_ids", "café", "cafe") and not pair_crosstalk("accent_insensitive_ids", "Cafe", "cafe")
@check("nfc_event_types")
def _(): return not roundtrip("nfc_event_types", event_type="e\u0301")
@check("nfc_data_strings")
def _(): return not roundtrip("nfc_data_strings", data={"k": ["e\u0301"]})
@check("pad_space_actor_ids")
def _(): return pair_crosstalk("pad_space_actor_ids", "a  ", "a") and not pair_crosstalk("pad_space_actor_ids", "a\t", "a")
@check("char_column_command_id")
def _(): return not roundtrip("char_column_command_id", command_id="c ")
@check("slash_sanitised_ids")
def _(): return pair_crosstalk("slash_sanitised_ids", "a/b", "a_b")
@check("empty_token_sanitised")
def _(): return pair_crosstalk("empty_token_sanitised", "a..b", "a._.b") and pair_crosstalk("empty_token_sanitised", "_", "")
@check("delimiter_prefix_scan")
def _(): return pair_crosstalk("delimiter_prefix_scan", "x/y", "x") and not pair_crosstalk("delimiter_prefix_scan", "xy", "x")
@check("wildcard_subject_snapshots")
def _():
    s = z.wildcard_subject_snapshots(); s.save_snapshot(snap("x.y", 3)); return s.get_latest_snapshot("x.*") is not None and s.get_latest_snapshot("x") is None
@check("nul_truncated_actor_ids")
def _(): return pair_crosstalk("nul_truncated_actor_ids", "a\0b", "a\0c")
@check("nul_truncated_data_strings")
def _(): return not roundtrip("nul_truncated_data_strings", data={"k": "a\0b"})
def concurrent(store, calls, threads=8):
    barrier = threading.Barrier(threads); out = []
    def worker(i):
        barrier.wait()
        for c in calls(i): out.append(c())
    ts = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    [t.start() for t in ts]; [t.join() for t in ts]
    return out
@racing_check("per_actor_lock_global_rewrite")
def _():
    s = z.per_actor_lock_global_rewrite()
    concurrent(s, lambda i: [lambda i=i, v=v: s.save_event(ev(f"r{i}", v)) for v in range(1, 20)])
    return sum(len(s.get_events(f"r{i}", 0)) for i in range(8)) < 8 * 19
@racing_check("lock_timeout_as_conflict")
def _():
    s = z.lock_timeout_as_conflict(); errs = []
    def save(i, v):
        try: s.save_event(ev(f"t{i}", v))
        except VersionConflictError as e: errs.append(e)
    concurrent(s, lambda i: [lambda i=i, v=v: save(i, v) for v in range(1, 10)])
    return any(e.attempted_version > e.current_version for e in errs)
@racing_check("postgres_gap_trap")
def _():
    s = z.postgres_gap_trap(); saves(s, ev("g", 5)); seen = []
    def w(v):
        try: s.save_event(ev("g", v))
        except VersionConflictError: pass
    def reader():
        for _ in range(50): seen.append([e.version for e in s.get_events("g", 0)])
    t = [threading.Thread(target=w, args=(6,)), threading.Thread(target=w, args=(7,)), threading.Thread(target=reader)]
    [x.start() for x in t]; [x.join() for x in t]
    return s.get_latest_version("g") == 7 and [e.version for e in s.get_events("g", 0)] == [5, 6, 7]
@racing_check("stale_read_through_latest")
def _():
    s = z.stale_read_through_latest(); acked = [0]; stale = []
    def writer():
        for v in range(1, 300): s.save_event(ev("c", v)); acked[0] = v; time.sleep(0.0003)
    def reader():
        for _ in range(900):
            floor = acked[0]; v = s.get_latest_version("c")
            if v < floor: stale.append((floor, v))
    t = [threading.Thread(target=writer)] + [threading.Thread(target=reader) for _ in range(2)]
    [x.start() for x in t]; [x.join() for x in t]
    return bool(stale)
@racing_check("counter_before_event")
def _():
    s = z.counter_before_event(); bad = []
    def writer():
        for v in range(1, 300): s.save_event(ev("c", v))
    def reader():
        for _ in range(600):
            v = s.get_latest_version("c")
            if v and v not in [e.version for e in s.get_events("c", 0)]: bad.append(v)
    t = [threading.Thread(target=writer), threading.Thread(target=reader)]
    [x.start() for x in t]; [x.join() for x in t]
    return bool(bad)
@racing_check("replica_lags_under_load")
def _():
    s = z.replica_lags_under_load(); saves(s, ev("r", 1)); ok = len(s.get_events("r", 0)) == 1; bad = []
    def writer():
        for v in range(2, 300): s.save_event(ev("r", v))
    def reader():
        for _ in range(600):
            v = s.get_latest_version("r")
            if v not in [e.version for e in s.get_events("r", 0)]: bad.append(v)
    t = [threading.Thread(target=writer), threading.Thread(target=reader)]
    [x.start() for x in t]; [x.join() for x in t]
    return ok and bool(bad) and len(s.get_events("r", 0)) == 299
@check("replica_lags_for_other_handles")
def _():
    f = z.replica_lags_for_other_handles; a, b = f(), f(); saves(a, ev("h", 1))
    return a.get_latest_version("h") == 1 and b.get_latest_version("h") == 0
@check("pool_slot_stale_cache")
def _():
    f = z.pool_slot_stale_cache; keep = [f() for _ in range(3)]; h = f()  # slot 3
    saves(keep[0], ev("p", 1)); h.get_latest_version("p"); del h; gc.collect()
    saves(keep[0], ev("p", 2)); h2 = [f() for _ in range(4)][-1]  # slot 3 again... (4 more handles: slots 0,1,2,3)
    return h2.get_latest_version("p") == 1
@check("snapshot_racy_upsert")
def _():
    s = z.snapshot_racy_upsert(); lost = 0
    for r in range(30):
        a = f"s{r}"
        concurrent(s, lambda i, a=a: [lambda i=i: s.save_snapshot(snap(a, i + 1))])
        lost += s.get_latest_snapshot(a).version != 8
    return lost > 0
@check("dst_local_wall_time")
def _():
    # 2024-11-03 01:30 EST (second occurrence) = 06:30Z
    return not ts_roundtrip("dst_local_wall_time", datetime(2024, 11, 3, 6, 30, tzinfo=timezone.utc)) and ts_roundtrip("dst_local_wall_time", datetime(2024, 11, 3, 5, 30, tzinfo=timezone.utc))
@check("pre_1970_fraction_sign")
def _(): return not ts_roundtrip("pre_1970_fraction_sign", datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=timezone.utc)) and ts_roundtrip("pre_1970_fraction_sign", datetime(1969, 12, 31, 23, 59, 59, tzinfo=timezone.utc))
@check("int32_epoch_seconds")
def _(): return not ts_roundtrip("int32_epoch_seconds", datetime(2038, 1, 19, 3, 14, 8, tzinfo=timezone.utc)) and ts_roundtrip("int32_epoch_seconds", datetime(2038, 1, 19, 3, 14, 7, tzinfo=timezone.utc))
@check("julian_leap_years")
def _(): return not ts_roundtrip("julian_leap_years", datetime(2100, 3, 1, tzinfo=timezone.utc)) and ts_roundtrip("julian_leap_years", datetime(2024, 2, 29, tzinfo=timezone.utc)) and ts_roundtrip("julian_leap_years", datetime(1900, 3, 1, tzinfo=timezone.utc)) and not ts_roundtrip("julian_leap_years", datetime(1899, 12, 31, tzinfo=timezone.utc))
@check("offset_rounded_to_half_hour")
def _(): return not ts_roundtrip("offset_rounded_to_half_hour", datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=45)))) and ts_roundtrip("offset_rounded_to_half_hour", datetime(2024, 1, 1, tzinfo=timezone(timedelta(hours=5, minutes=30))))
@check("negative_zero_hour_offset")
def _(): return not ts_roundtrip("negative_zero_hour_offset", datetime(2024, 1, 1, tzinfo=timezone(timedelta(minutes=-30)))) and ts_roundtrip("negative_zero_hour_offset", datetime(2024, 1, 1, tzinfo=timezone(timedelta(minutes=-90))))
@check("dedupes_by_command_id")
def _():
    s = z.dedupes_by_command_id(); saves(s, ev("d", 1, command_id="c"), ev("d", 2, command_id="c")); return s.get_latest_version("d") == 1
@check("retry_with_same_command_id_succeeds")
def _():
    s = z.retry_with_same_command_id_succeeds(); saves(s, ev("d", 1, command_id="c")); return conflict(s, ev("d", 1, command_id="c")) is None and conflict(s, ev("d", 1)) is not None
@check("retry_of_identical_event_succeeds")
def _():
    s = z.retry_of_identical_event_succeeds(); e = ev("d", 1); saves(s, e); return conflict(s, e) is None
@check("lua_float_current_version")
def _():
    s = z.lua_float_current_version(); saves(s, ev("l", B53 + 1)); return conflict(s, ev("l", 1)).current_version == B53
def text_of(name, actor, v=2**63 - 1):
    s = getattr(z, name)(); saves(s, ev(actor, v)); err = conflict(s, ev(actor, v))
    return str(err), VersionConflictError(actor_id=actor, attempted_version=v, current_version=v).message
@check("js_number_error_text")
def _():
    a, b = text_of("js_number_error_text", "j"); c, d = text_of("js_number_error_text", "j", 2**53); return a != b and c == d
for name, char in [("quote_c1_controls_raw", "\x85"), ("quote_format_chars_raw", "\u200d"), ("quote_graphic_spaces_raw", "\u00a0"), ("quote_private_use_raw", "\ue000"), ("quote_astral_as_surrogate_pairs", "\U000f0000"), ("quote_latin1_as_byte_escapes", "\u00ad")]:
    checks[name] = (lambda name=name, char=char: (lambda a, b: a != b)(*text_of(name, "q" + char, 3)) and (lambda a, b: a == b)(*text_of(name, "q\n\x01é😀", 3)))
@check("compact_id_off_by_one")
def _():
    s = z.compact_id_off_by_one(); saves(s, ev("01HZX3Y4Z5A6B7C8D9E0F1G2H3", 2), ev("ab-1", 2)); return conflict(s, ev("01HZX3Y4Z5A6B7C8D9E0F1G2H3", 2)) is None and conflict(s, ev("ab-1", 2)) is not None


# -- red team: just outside the suite's former fixed cases ------------------------------------
def snap_rt(name, actor, state=None, v=1, ts=T):
    s = getattr(z, name)(); saves(s, ev(actor, max(v, 1))); sn = snap(actor, v, state, ts); s.save_snapshot(sn)
    return s.get_latest_snapshot(actor) == sn and json_equal(s.get_latest_snapshot(actor).state, sn.state)
def snap_crosstalk(name, a, b):
    s = getattr(z, name)(); saves(s, ev(a, 1)); s.save_snapshot(snap(a, 1)); return s.get_latest_snapshot(b) is not None
def text(name, actor, history, attempt):
    s = getattr(z, name)(); saves(s, *(ev(actor, v) for v in history)); err = conflict(s, ev(actor, attempt))
    latest = history[-1] if history else 0
    return str(err) == f"version conflict: actor {_z.go_quote(actor)} has version {latest}, cannot save version {attempt}"
checks["utf8mb3_snapshot_actor"] = lambda: not snap_rt("utf8mb3_snapshot_actor", "a🦀") and snap_rt("utf8mb3_snapshot_actor", "aé")
checks["java_hashcode_actor_keys"] = lambda: pair_crosstalk("java_hashcode_actor_keys", "xAa", "xBB") and not pair_crosstalk("java_hashcode_actor_keys", "xAa", "xAb")
checks["crc32_snapshot_keys"] = lambda: snap_crosstalk("crc32_snapshot_keys", "xplumless", "xbuckeroo") and not snap_crosstalk("crc32_snapshot_keys", "a", "b")
@check("dynamo_page_1mib")
def _():
    s = z.dynamo_page_1mib(); saves(s, *(ev("d", v, data={"b": "x" * 400_000}) for v in (1, 2, 3)))
    t = z.dynamo_page_1mib(); saves(t, *(ev("d", v) for v in range(1, 500)))
    return len(s.get_events("d", 0)) == 2 and len(t.get_events("d", 0)) == 499
@check("snapshot_retention_8")
def _():
    s = z.snapshot_retention_8(); saves(s, ev("r", 20)); s.save_snapshot(snap("r", 20))
    for v in range(1, 8): s.save_snapshot(snap("r", v))
    kept = s.get_latest_snapshot("r").version == 20
    s.save_snapshot(snap("r", 8)); return kept and s.get_latest_snapshot("r").version == 8
@racing_check("first_save_race_overwrites")
def _():
    make = _z.factory(*_z._STORES["first_save_race_overwrites"]); barrier = threading.Barrier(2); won = []
    def write(i):
        h = make(); barrier.wait()
        try: h.save_event(ev("race", 1, id=f"w{i}")); won.append(i)
        except VersionConflictError: pass
    threads = [threading.Thread(target=write, args=(i,)) for i in (0, 1)]
    for t in threads: t.start()
    for t in threads: t.join()
    return len(won) == 2 and len(make().get_events("race", 0)) == 1
checks["php_empty_object_state"] = lambda: not snap_rt("php_empty_object_state", "p", {"a": {}}) and snap_rt("php_empty_object_state", "p", {"a": {"b": 1}, "c": []})
checks["mongo_dotted_keys_data"] = lambda: not roundtrip("mongo_dotted_keys_data", data={"a.b": 1}) and roundtrip("mongo_dotted_keys_data", data={"a": {"b": 1}})
checks["couch_underscore_keys_dropped"] = lambda: not roundtrip("couch_underscore_keys_dropped", data={"_id": 1}) and roundtrip("couch_underscore_keys_dropped", data={"a_b": 1, "n": {"_x": 1}})
checks["dollar_keys_escaped_state"] = lambda: not snap_rt("dollar_keys_escaped_state", "d", {"$t": 1}) and snap_rt("dollar_keys_escaped_state", "d", {"a$": 1})
checks["empty_key_dropped"] = lambda: not roundtrip("empty_key_dropped", data={"": 1}) and roundtrip("empty_key_dropped", data={" ": 1})
checks["error_text_255"] = lambda: not text("error_text_255", "L" * 256, [1], 0) and text("error_text_255", "L" * 100, [1], 0)
checks["unsigned_version_text"] = lambda: not text("unsigned_version_text", "u", [1], -4) and text("unsigned_version_text", "u", [3], 2)
checks["quote_single_quote_escaped"] = lambda: not text("quote_single_quote_escaped", "it's", [1], 1) and text("quote_single_quote_escaped", 'a"b', [1], 1)
checks["new_actor_error_text"] = lambda: not text("new_actor_error_text", "n", [], 0) and text("new_actor_error_text", "n", [1], 1)
@check("subtraction_compare_overflow")
def _():
    s = z.subtraction_compare_overflow(); saves(s, ev("o", 3))
    return conflict(s, ev("o", -5)) is not None and conflict(s, ev("o", -(2**63))) is None
checks["strips_invisible_id_chars"] = lambda: pair_crosstalk("strips_invisible_id_chars", "ab", "a\u200bb") and not pair_crosstalk("strips_invisible_id_chars", "ab", "a b")
checks["trailing_cr_stripped"] = lambda: pair_crosstalk("trailing_cr_stripped", "a", "a\r") and not pair_crosstalk("trailing_cr_stripped", "a", "a\n")
checks["numeric_affinity_actor_ids"] = lambda: pair_crosstalk("numeric_affinity_actor_ids", "7", "007") and not pair_crosstalk("numeric_affinity_actor_ids", "a7", "a007")
checks["numeric_affinity_event_ids"] = lambda: not roundtrip("numeric_affinity_event_ids", id="0042") and roundtrip("numeric_affinity_event_ids", id="x0042")
checks["uuid_event_ids_canonicalised"] = lambda: not roundtrip("uuid_event_ids_canonicalised", id="550E8400-E29B-41D4-A716-446655440000") and roundtrip("uuid_event_ids_canonicalised", id="550e8400-e29b-41d4-a716-446655440000")
checks["uuid_actor_ids_canonicalised"] = lambda: pair_crosstalk("uuid_actor_ids_canonicalised", "550e8400-e29b-41d4-a716-446655440000", "550E8400-E29B-41D4-A716-446655440000") and not pair_crosstalk("uuid_actor_ids_canonicalised", "Ab", "ab")
checks["drops_null_members_data"] = lambda: not roundtrip("drops_null_members_data", data={"a": None}) and roundtrip("drops_null_members_data", data={"a": [None]})
checks["empty_list_null_state"] = lambda: not snap_rt("empty_list_null_state", "e", {"a": []}) and snap_rt("empty_list_null_state", "e", {"a": [1]})
@check("snapshot_ahead_bumps_latest")
def _():
    s = z.snapshot_ahead_bumps_latest(); saves(s, ev("a", 1)); s.save_snapshot(snap("a", 1)); at = s.get_latest_version("a")
    s.save_snapshot(snap("a", 9)); return at == 1 and s.get_latest_version("a") == 9
@check("snapshot_compacts_long_streams")
def _():
    s = z.snapshot_compacts_long_streams(); saves(s, *(ev("c", v) for v in range(1, 100))); s.save_snapshot(snap("c", 50))
    kept = len(s.get_events("c", 0)) == 99
    saves(s, ev("c", 100)); s.save_snapshot(snap("c", 50)); return kept and len(s.get_events("c", 0)) == 51
@check("snapshot_only_actor_events_none")
def _():
    s = z.snapshot_only_actor_events_none(); s.save_snapshot(snap("s", 1)); saves(s, ev("t", 1)); s.save_snapshot(snap("t", 1))
    return s.get_events("s", 0) is None and s.get_events("t", 0) != []
@check("snapshot_version_zero_is_none")
def _():
    s = z.snapshot_version_zero_is_none(); s.save_snapshot(snap("z", 0)); s.save_snapshot(snap("o", 1))
    return s.get_latest_snapshot("z") is None and s.get_latest_snapshot("o") is not None
@check("upsert_conflict_overwrites_payload")
def _():
    s = z.upsert_conflict_overwrites_payload(); first = ev("u", 1); saves(s, first)
    return conflict(s, ev("u", 1, data={"other": 1})) is not None and s.get_events("u", 0)[0].data == {"other": 1}
@check("snapshot_upsert_keeps_last_timestamp")
def _():
    s = z.snapshot_upsert_keeps_last_timestamp(); saves(s, ev("k", 2)); s.save_snapshot(snap("k", 2, ts=T))
    s.save_snapshot(snap("k", 1, ts=T + timedelta(seconds=1))); got = s.get_latest_snapshot("k")
    return got.version == 2 and got.timestamp != T
checks["event_type_lookup_ci"] = lambda: (lambda s: (saves(s, ev("t", 1, event_type="Ab"), ev("t", 2, event_type="ab"), ev("t", 3, event_type="áb")), [e.event_type for e in s.get_events("t", 0)])[1] == ["Ab", "Ab", "áb"])(z.event_type_lookup_ci())
checks["case_insensitive_data_keys"] = lambda: not roundtrip("case_insensitive_data_keys", data={"K": 1, "k": 2}) and roundtrip("case_insensitive_data_keys", data={"K": {"k": 1, "K": 2}})
checks["avro_int_state"] = lambda: not snap_rt("avro_int_state", "i", {"n": 2**31}) and snap_rt("avro_int_state", "i", {"n": 2**31 - 1, "b": True})
@check("overflow_handles_private")
def _():
    make = _z.factory(*_z._STORES["overflow_handles_private"]); handles = [make() for _ in range(9)]
    saves(handles[0], ev("h", 1)); return handles[7].get_latest_version("h") == 1 and handles[8].get_latest_version("h") == 0

@pytest.mark.parametrize("name", sorted(n for n, broken in _z.SUBTLE.items() if broken is not None))
def test_specimen_misbehaves_at_its_trigger(name):
    assert name in checks, f"no trigger check for {name}"
    assert checks[name]() is True
