// Command go_seed serves the Go seed's in-memory event store over the aether-store/1 protocol
// (JSON lines on stdin/stdout; see docs/process-protocol.md), so that the conformance suite can
// certify Go code directly:
//
//	AETHER_STORE_COMMAND="go run ./reference_store/go_seed" \
//	    aether-conformance run aether_conformance.process_store:from_environment
//
// The store is the seed's design: a mutex around a map of event slices, a conflict check of
// version <= latest, snapshots kept in a slice with the highest version winning (first on ties).
// Requests are served concurrently, one goroutine each, as a real server would.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
)

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

// InMemoryEventStore is the seed's store.
type InMemoryEventStore struct {
	mu        sync.RWMutex
	events    map[string][]*Event
	snapshots map[string][]*ActorSnapshot
}

func NewInMemoryEventStore() *InMemoryEventStore {
	return &InMemoryEventStore{events: map[string][]*Event{}, snapshots: map[string][]*ActorSnapshot{}}
}

func (es *InMemoryEventStore) latest(actorID string) int64 {
	events := es.events[actorID]
	if len(events) == 0 {
		return 0
	}
	return events[len(events)-1].Version
}

func (es *InMemoryEventStore) SaveEvent(event *Event) error {
	es.mu.Lock()
	defer es.mu.Unlock()
	if current := es.latest(event.ActorID); event.Version <= current {
		return &VersionConflictError{ActorID: event.ActorID, AttemptedVersion: event.Version, CurrentVersion: current}
	}
	es.events[event.ActorID] = append(es.events[event.ActorID], event)
	return nil
}

func (es *InMemoryEventStore) GetEvents(actorID string, fromVersion int64) ([]*Event, error) {
	es.mu.RLock()
	defer es.mu.RUnlock()
	result := []*Event{}
	for _, event := range es.events[actorID] {
		if event.Version >= fromVersion {
			result = append(result, event)
		}
	}
	return result, nil
}

func (es *InMemoryEventStore) GetLatestVersion(actorID string) (int64, error) {
	es.mu.RLock()
	defer es.mu.RUnlock()
	return es.latest(actorID), nil
}

func (es *InMemoryEventStore) SaveSnapshot(snapshot *ActorSnapshot) error {
	es.mu.Lock()
	defer es.mu.Unlock()
	es.snapshots[snapshot.ActorID] = append(es.snapshots[snapshot.ActorID], snapshot)
	return nil
}

func (es *InMemoryEventStore) GetLatestSnapshot(actorID string) (*ActorSnapshot, error) {
	es.mu.RLock()
	defer es.mu.RUnlock()
	var best *ActorSnapshot
	for _, snapshot := range es.snapshots[actorID] {
		if best == nil || snapshot.Version > best.Version {
			best = snapshot
		}
	}
	return best, nil
}

// The aether-store/1 protocol.

type request struct {
	ID     int64           `json:"id"`
	Method string          `json:"method"`
	Params json.RawMessage `json:"params"`
}

type params struct {
	Event       *Event         `json:"event"`
	Snapshot    *ActorSnapshot `json:"snapshot"`
	ActorID     string         `json:"actorId"`
	FromVersion int64          `json:"fromVersion"`
}

type conflict struct {
	ActorID          string `json:"actorId"`
	AttemptedVersion int64  `json:"attemptedVersion"`
	CurrentVersion   int64  `json:"currentVersion"`
	Message          string `json:"message"`
}

type failure struct {
	Kind     string    `json:"kind"`
	Message  string    `json:"message,omitempty"`
	Conflict *conflict `json:"conflict,omitempty"`
}

type response struct {
	ID     int64       `json:"id"`
	Result interface{} `json:"result"`
	Error  *failure    `json:"error,omitempty"`
}

func serve(store *InMemoryEventStore, req request) response {
	var p params
	if err := json.Unmarshal(req.Params, &p); err != nil {
		return response{ID: req.ID, Error: &failure{Kind: "invalid_argument", Message: err.Error()}}
	}
	var result interface{}
	var err error
	switch req.Method {
	case "save_event":
		if p.Event == nil {
			return response{ID: req.ID, Error: &failure{Kind: "invalid_argument", Message: "params.event: required"}}
		}
		err = store.SaveEvent(p.Event)
	case "get_events":
		result, err = store.GetEvents(p.ActorID, p.FromVersion)
	case "get_latest_version":
		result, err = store.GetLatestVersion(p.ActorID)
	case "save_snapshot":
		if p.Snapshot == nil {
			return response{ID: req.ID, Error: &failure{Kind: "invalid_argument", Message: "params.snapshot: required"}}
		}
		err = store.SaveSnapshot(p.Snapshot)
	case "get_latest_snapshot":
		var snapshot *ActorSnapshot
		snapshot, err = store.GetLatestSnapshot(p.ActorID)
		if snapshot != nil {
			result = snapshot
		}
	default:
		return response{ID: req.ID, Error: &failure{Kind: "invalid_argument", Message: "unknown method " + req.Method}}
	}
	if vc, ok := err.(*VersionConflictError); ok {
		return response{ID: req.ID, Error: &failure{Kind: "version_conflict", Conflict: &conflict{
			ActorID: vc.ActorID, AttemptedVersion: vc.AttemptedVersion, CurrentVersion: vc.CurrentVersion, Message: vc.Error(),
		}}}
	}
	if err != nil {
		return response{ID: req.ID, Error: &failure{Kind: "internal", Message: err.Error()}}
	}
	return response{ID: req.ID, Result: result}
}

func main() {
	store := NewInMemoryEventStore()
	out := json.NewEncoder(os.Stdout)
	var writeMu sync.Mutex
	write := func(v interface{}) {
		writeMu.Lock()
		defer writeMu.Unlock()
		if err := out.Encode(v); err != nil {
			fmt.Fprintln(os.Stderr, "write:", err)
			os.Exit(1)
		}
	}
	// name and version are recorded in the report, so a certificate says which binary was certified.
	write(map[string]interface{}{"protocol": "aether-store/1", "snapshots": true, "name": "go_seed", "version": "0.1.0"})

	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 64<<20)
	var pending sync.WaitGroup
	for in.Scan() {
		var req request
		if err := json.Unmarshal(in.Bytes(), &req); err != nil {
			fmt.Fprintln(os.Stderr, "bad request:", err)
			os.Exit(2)
		}
		pending.Add(1)
		go func() {
			defer pending.Done()
			write(serve(store, req))
		}()
	}
	pending.Wait()
}
