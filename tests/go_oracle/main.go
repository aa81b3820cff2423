// Command go_oracle records what Go itself writes, as the oracle for the kit's Go compatibility:
// strconv's %q quoting (used by the seed's VersionConflictError) and encoding/json's form of the
// seed's Event and ActorSnapshot types. Regenerate with:
//
//	cd tests/go_oracle && go run . > go_output.json
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// The seed's types, with the seed's JSON tags.
type Event struct {
	ID        string                 `json:"id"`
	EventType string                 `json:"eventType"`
	ActorID   string                 `json:"actorId"`
	CommandID string                 `json:"commandId,omitempty"`
	Version   int64                  `json:"version"`
	Data      map[string]interface{} `json:"data"`
	Timestamp time.Time              `json:"timestamp"`
}

type ActorSnapshot struct {
	ActorID   string                 `json:"actorId"`
	Version   int64                  `json:"version"`
	State     map[string]interface{} `json:"state"`
	Timestamp time.Time              `json:"timestamp"`
}

type VersionConflictError struct {
	ActorID          string
	AttemptedVersion int64
	CurrentVersion   int64
}

func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("version conflict: actor %q has version %d, cannot save version %d",
		e.ActorID, e.CurrentVersion, e.AttemptedVersion)
}

// extend adds r to a list of [first, last] ranges built in ascending order.
func extend(ranges [][2]rune, r rune) [][2]rune {
	if n := len(ranges); n > 0 && (ranges[n-1][1] == r-1 || ranges[n-1][1] == 0xD7FF && r == 0xE000) {
		ranges[n-1][1] = r
		return ranges
	}
	return append(ranges, [2]rune{r, r})
}

type quoted struct {
	Input string `json:"input"`
	Go    string `json:"go"`
}

func main() {
	// Code points that %q escapes when they stand alone, as [first, last] ranges; and, among
	// them, those this Go's Unicode tables do not assign at all (a newer Unicode may print them).
	escaped, unassigned := [][2]rune{}, [][2]rune{}
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue // not encodable in UTF-8: no Go string holds them
		}
		s := string(r)
		if strconv.Quote(s) == `"`+s+`"` {
			continue
		}
		escaped = extend(escaped, r)
		if !unicode.In(r, unicode.L, unicode.M, unicode.N, unicode.P, unicode.S, unicode.Z, unicode.C) {
			unassigned = extend(unassigned, r)
		}
	}

	samples := []string{
		"plain", `quote"and\slash`, "tab\tnew\nline\rcr", "bell\a\b\f\v", "nul\x00del\x7f",
		"ünïcödé-🦀", "nbsp\u00a0sep\u2028para\u2029", "bom\ufeffsoft\u00adhyphen", "private\ue000",
		"zwj👩\u200d👩\u200d👧", "combining e\u0301", "unassigned\u0378", "c1\u0085\u009f",
		"astral\U0001F600\U000E0001", "", " ",
	}
	var quotes []quoted
	for _, s := range samples {
		quotes = append(quotes, quoted{s, strconv.Quote(s)})
	}

	var conflicts []map[string]interface{}
	for _, actor := range []string{"A", "order-17", `it's "quoted" \ back`, "tab\tnl\n", "🦀", ""} {
		err := &VersionConflictError{ActorID: actor, AttemptedVersion: 2, CurrentVersion: 3}
		conflicts = append(conflicts, map[string]interface{}{"actorId": actor, "attemptedVersion": 2, "currentVersion": 3, "message": err.Error()})
	}

	ist := time.FixedZone("IST", 5*3600+30*60)
	pst := time.FixedZone("PST", -8*3600)
	events := []Event{
		{ID: "e1", EventType: "Created", ActorID: "a", Version: 1, Data: nil, Timestamp: time.Date(2024, 1, 2, 3, 4, 5, 123456789, time.UTC)},
		{ID: "e2", EventType: "Renamed", ActorID: "a", CommandID: "cmd-1", Version: 2,
			Data:      map[string]interface{}{"name": "Zoë 🦀", "nested": map[string]interface{}{"list": []interface{}{1, 2.5, true, nil, "<&>"}}, "b": false},
			Timestamp: time.Date(2024, 6, 1, 9, 0, 0, 1000, ist)},
		{ID: "", EventType: "", ActorID: "*.>", Version: 9223372036854775807, Data: map[string]interface{}{}, Timestamp: time.Date(1999, 12, 31, 23, 0, 0, 500000000, pst)},
		{ID: "e4", EventType: "Zero", ActorID: "z", Version: 1, Data: map[string]interface{}{"n": 1e21, "small": 1e-7}, Timestamp: time.Time{}.UTC()},
	}
	var eventJSON []string
	for _, e := range events {
		b, err := json.Marshal(e)
		if err != nil {
			panic(err)
		}
		eventJSON = append(eventJSON, string(b))
	}
	snapshots := []ActorSnapshot{
		{ActorID: "a", Version: 2, State: nil, Timestamp: time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)},
		{ActorID: "b", Version: 7, State: map[string]interface{}{"cart": []interface{}{"x"}}, Timestamp: time.Date(2024, 1, 2, 3, 4, 5, 100, ist)},
	}
	var snapshotJSON []string
	for _, s := range snapshots {
		b, err := json.Marshal(s)
		if err != nil {
			panic(err)
		}
		snapshotJSON = append(snapshotJSON, string(b))
	}

	out := map[string]interface{}{
		"go":                     runtime.Version(),
		"unicode":                unicode.Version,
		"quoteEscaped":           escaped,
		"quoteEscapedUnassigned": unassigned,
		"quoteSamples":           quotes,
		"conflicts":              conflicts,
		"eventJSON":              eventJSON,
		"snapshotJSON":           snapshotJSON,
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", " ")
	if err := enc.Encode(out); err != nil {
		panic(err)
	}
}
