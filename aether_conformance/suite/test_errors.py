"""ES-ERR-*: the conflict error's type, fields and text."""

from __future__ import annotations

import pytest

from ..boundaries import QUOTE_ESCAPE_CLASSES
from ..driver import StoreRaised
from ..errors import go_quote, seed_text
from ..model import INT64_MAX, INT64_MIN
from .support import highest_stored_version, new_event, q, save_all_conflict, save_conflict, save_ok, violated


def _conflict_after(store, actor, history, attempt, req_id):
    for version in history:
        save_ok(req_id, store, new_event(actor, version))
    return save_conflict(req_id, store, new_event(actor, attempt), latest=history[-1] if history else 0)


@pytest.mark.requirement("ES-ERR-001")
@pytest.mark.parametrize(
    "history, attempt", [([1, 2, 3], 3), ([1, 2, 3], 2), ([1, 2, 3], -4), ([4, 9], 6), ([], 0), ([], -1)],
    ids=lambda v: str(v).replace(" ", ""),
)
def test_conflict_error_fields(store, fresh_actor, history, attempt):
    actor = fresh_actor()
    error = _conflict_after(store, actor, history, attempt, "ES-ERR-001")
    latest = history[-1] if history else 0
    expected = {"actor_id": actor, "attempted_version": attempt, "current_version": latest}
    got = {name: getattr(error, name, "<missing>") for name in expected}
    if got != expected:
        violated(
            "ES-ERR-001",
            f"saved version {attempt} to actor {q(actor)} whose latest is {latest}; expected "
            f"VersionConflictError with {expected}, store raised {getattr(error, 'raised_type', type(error).__name__)} with {got}",
        )


@pytest.mark.requirement("ES-ERR-001")
def test_a_conflicted_event_sent_again_names_the_new_latest(store, fresh_actor):
    # An idempotency layer keyed by the request (actor, event id, version) that caches refusals
    # too answers the resent event with the first refusal's current version.
    actor = fresh_actor()
    for version in (1, 2):
        save_ok("ES-ERR-001", store, new_event(actor, version))
    resent = new_event(actor, 2)
    save_conflict("ES-ERR-001", store, resent, latest=2)
    save_ok("ES-ERR-001", store, new_event(actor, 3))
    error = save_conflict("ES-ERR-001", store, resent, latest=3)
    if error.current_version != 3:
        violated("ES-ERR-001", f"event {q(resent.id)} at version 2 of {q(actor)} conflicted at latest 2; sent again at "
                               f"latest 3, it conflicted with current version {error.current_version}")


@pytest.mark.requirement("ES-ERR-001", "ES-ERR-002")
def test_thousands_of_conflicts_on_one_actor_carry_the_latest(store, fresh_actor):
    # A hot actor: some stores switch one to another write path after so many conflicts (a
    # single-writer mailbox after 2,000), whose refusals are worded from another source.
    actor = fresh_actor()
    for version in (1, 2):
        save_ok("ES-ERR-001", store, new_event(actor, version))
    errors = save_all_conflict("ES-ERR-001", store, [new_event(actor, 1 + attempt % 2) for attempt in range(2_100)],
                               latest=2)
    for attempt, error in enumerate(errors):
        version = 1 + attempt % 2
        if (error.actor_id, error.current_version) != (actor, 2):
            violated("ES-ERR-001", f"conflict {attempt + 1} of 2,100 on {q(actor)} (latest 2) named actor "
                                   f"{q(error.actor_id)} at current version {error.current_version}")
        if str(error) != seed_text(actor, version, 2):
            violated("ES-ERR-002", f"conflict {attempt + 1} of 2,100 on {q(actor)} (latest 2): expected error text "
                                   f"{seed_text(actor, version, 2)!r}, store's error text is {str(error)[:500]!r}")


@pytest.mark.requirement("ES-ERR-002")
@pytest.mark.presupposes("ES-ERR-001")  # the text is the fields, worded
@pytest.mark.parametrize(
    "label", ["plain", 'quote"and\\slash', "it's 'single'", "tab\tnew\nline", "ünïcödé-🦀", "nul\x00bell\x07",
              "nbsp\u00a0sep\u2028",
              # Printable, so Go writes them raw: U+FFFD (only an invalid byte is \ufffd's escape) and a
              # combining accent.
              "replacement\ufffdchar", "e\u0301-accent",
              # Format verbs: a port that puts the quoted id into the format string (Sprintf(msg + id))
              # turns them into %!d(MISSING).
              "100%done", "verbs %d %s %q %v %!x %%"],
    # Only characters Unicode 13 already had (Go 1.16, Java 17, Python 3.9): whether %q escapes a
    # newer one depends on the Unicode tables of the store's language (spec section 5), and the
    # seed built with such a Go escapes it too.
)
def test_conflict_error_text_is_the_seeds(store, fresh_actor, label):
    # The label itself in the id, always (fresh_actor may leave its label out).
    token = fresh_actor("")
    actor = f"{token[:8]}{label}{token[8:]}"
    error = _conflict_after(store, actor, [1, 2, 3], 2, "ES-ERR-002")
    expected = f"version conflict: actor {go_quote(actor)} has version 3, cannot save version 2"
    if str(error) != expected:
        violated(
            "ES-ERR-002",
            f"saved version 2 to actor {q(actor)} whose latest is 3; expected error text {expected!r}, "
            f"store's error text is {str(error)!r}",
        )


@pytest.mark.requirement("ES-ERR-002")
@pytest.mark.presupposes("ES-ERR-001")  # the text is the fields, worded
@pytest.mark.parametrize("kind", sorted(QUOTE_ESCAPE_CLASSES))
def test_conflict_error_text_escapes_like_go(store, fresh_actor, kind):
    # One class of Go's %q escapes per case, in the middle of the id (a store's own quoting, or
    # Python's repr, differs from Go's on each of them).
    characters, escaped = QUOTE_ESCAPE_CLASSES[kind]
    token = fresh_actor("")
    actor = f"{token[:8]}{characters}{token[8:]}"
    error = _conflict_after(store, actor, [1, 2, 3], 2, "ES-ERR-002")
    expected = f'version conflict: actor "{go_quote(token[:8])[1:-1]}{escaped}{go_quote(token[8:])[1:-1]}" has version 3, cannot save version 2'
    if str(error) != expected:
        violated(
            "ES-ERR-002",
            f"saved version 2 to actor {q(actor)} ({kind}) whose latest is 3; expected error text {expected!r}, "
            f"store's error text is {str(error)!r}",
        )


@pytest.mark.requirement("ES-ERR-002")
@pytest.mark.presupposes("ES-ERR-001")  # the text is the fields, worded
@pytest.mark.parametrize(
    "history, attempt", [([], 0), ([], -1), ([1, 2, 3], -4), ([2], INT64_MIN)], ids=lambda v: str(v).replace(" ", ""),
)
def test_conflict_error_text_for_new_actors_and_negative_versions(store, fresh_actor, history, attempt):
    # A message special-cased for an actor with no events, or versions printed as unsigned
    # integers, shows only here: the other texts are checked at positive versions.
    actor = fresh_actor()
    error = _conflict_after(store, actor, history, attempt, "ES-ERR-002")
    latest = history[-1] if history else 0
    expected = f"version conflict: actor {go_quote(actor)} has version {latest}, cannot save version {attempt}"
    if str(error) != expected:
        violated("ES-ERR-002", f"saved version {attempt} to actor {q(actor)} whose latest is {latest}; expected error "
                               f"text {expected!r}, store's error text is {str(error)!r}")


@pytest.mark.requirement("ES-ERR-002")
@pytest.mark.presupposes("ES-ERR-001")  # the text is the fields, worded
@pytest.mark.parametrize("filler", ["ascii", "astral"])
def test_conflict_error_text_for_the_longest_id(store, fresh_actor, filler):
    # 256 characters (the longest id every store accepts) at int64 versions: a text cut at 255
    # characters (a VARCHAR(255) or SIGNAL MESSAGE_TEXT on the way) loses its end, and one cut at
    # 1,023 bytes (a C buffer of 1 KiB) loses the end of 256 astral characters (4 bytes each).
    token = fresh_actor("")
    actor = (token + "-" + ("L" if filler == "ascii" else "\U0001f980") * 256)[:256]
    error = _conflict_after(store, actor, [INT64_MAX - 1], -(2**62), "ES-ERR-002")
    expected = (f"version conflict: actor {go_quote(actor)} has version {INT64_MAX - 1}, "
                f"cannot save version {-(2**62)}")
    if str(error) != expected:
        violated("ES-ERR-002", f"saved version {-(2**62)} to the 256-character actor {q(actor)} whose latest is "
                               f"{INT64_MAX - 1}; expected error text {expected!r}, store's error text is {str(error)!r}")


@pytest.mark.requirement("ES-ERR-002")
@pytest.mark.presupposes("ES-ERR-001")  # the text is the fields, worded
@pytest.mark.parametrize("kind", ["empty", "257-characters", "1000-characters"])
def test_conflict_error_text_for_empty_and_long_ids_a_store_keeps(store, fresh_actor, kind):
    # A store may refuse these ids (ES-ACTOR-003); one that keeps them words their conflicts like
    # any other: no "<unknown>" for the empty id, no id shortened to fit a message.
    if kind == "empty":
        actor = ""  # shared by every run against a long-lived store: write above what is there
    else:
        fresh = fresh_actor("y")
        actor = "y" * (int(kind.split("-")[0]) - len(fresh)) + fresh
    start = highest_stored_version(store, actor)
    try:
        store.save_event(new_event(actor, start + 1))
    except StoreRaised as error:
        if isinstance(error.original, ValueError):
            return  # refused, as ES-ACTOR-003 allows: ES-REFUSE-001 checks how
        raise
    error = save_conflict("ES-ERR-002", store, new_event(actor, start + 1), latest=start + 1)
    expected = seed_text(actor, start + 1, start + 1)
    if str(error) != expected:
        named = "the empty actor id" if kind == "empty" else f"an actor id of {kind.split('-')[0]} characters"
        violated("ES-ERR-002", f"saved version {start + 1} again to {named}, whose latest is {start + 1}; "
                               f"expected error text {expected[:300]!r}, store's error text is {str(error)[:300]!r}")
