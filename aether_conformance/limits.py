"""The sizes the specification fixes: what every store must carry, and what the kit can carry.

A store MAY refuse an input beyond a limit it documents (ES-LIMIT-001), but
that limit must be at least the floor given here; up to the floor every value
must round-trip exactly.  The suite tests at the floors, and the model refuses
what the kit itself cannot carry.
"""

from __future__ import annotations

__all__ = ["ENCODED_SIZE_FLOOR", "FIELD_LENGTH_FLOOR", "NESTING_DEPTH_FLOOR", "MAX_NESTING_DEPTH", "RECURSION_LIMIT"]

# Bytes of an event's (or snapshot's) compact Go JSON encoding, UTF-8, that every store must accept.
# NATS's default max_payload is 1 MiB; half of it leaves room for headers and envelopes.
ENCODED_SIZE_FLOOR = 512 * 1024

# Characters of an event's id, event_type and command_id that every store must accept
# (VARCHAR(64) and VARCHAR(255) columns fall short of it).
FIELD_LENGTH_FLOOR = 1024

# Levels of nesting of data and state that every store must accept.  MySQL's JSON type stops at 100.
NESTING_DEPTH_FLOOR = 64

# Levels of nesting the kit's model carries (deeper data is refused at construction with
# ValueError naming the field); Go's encoding/json carries 10,000, Python's json about 1,000.
MAX_NESTING_DEPTH = 512

# The Python recursion limit a run sets (never lowers) for the stores it calls in process.  Python's
# default of 1,000 frames is where copy.deepcopy (two frames a level) or a store's own recursive
# walk of MAX_NESTING_DEPTH-deep data gives out with RecursionError: that is Python's default, not
# a limit the store documents, so the run leaves room for six frames a level.
RECURSION_LIMIT = 6 * MAX_NESTING_DEPTH
