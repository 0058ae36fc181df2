package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/changegate/changegate/test/testenv"
)

// auditEvent is the part of an audit.k8s.io/v1 Event the benchmark reads.
type auditEvent struct {
	Stage string `json:"stage"`
	Verb  string `json:"verb"`
	User  struct {
		Username string `json:"username"`
	} `json:"user"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// requestCounts counts the manager's requests by what they did.
type requestCounts struct {
	// byKind counts by "<resource>[/<subresource>] <verb>".
	byKind map[string]int
	// byPlan counts, per plan, the requests on objects of that plan
	// (the plan, its snapshots and Events, its environments' workloads).
	byPlan map[string]int
	// failed counts the requests the API server refused, by HTTP code.
	failed map[int]int
	total  int
}

func newRequestCounts() *requestCounts {
	return &requestCounts{byKind: map[string]int{}, byPlan: map[string]int{}, failed: map[int]int{}}
}

func (c *requestCounts) add(kind, plan string, code int) {
	c.total++
	c.byKind[kind]++
	if plan != "" {
		c.byPlan[plan]++
	}
	if code >= 300 {
		c.failed[code]++
	}
}

// auditCounts is what the audit log says the manager asked of the API server.
type auditCounts struct {
	// writes are create, update, patch and delete requests except on Events.
	writes *requestCounts
	// events are the writes of Events (events.k8s.io), kept apart: they
	// tell people what happened and change nothing the plans depend on.
	events *requestCounts
	// reads are get and list requests (watches are not counted).
	reads *requestCounts
	// unattributed counts writes on objects no plan's name explains.
	unattributed int
}

var writeVerbs = map[string]bool{"create": true, "update": true, "patch": true, "delete": true, "deletecollection": true}

// readAudit counts the manager's requests in the audit log. plans maps a
// plan's name to itself: every object of the benchmark is named after its
// plan (the plan, <plan>-main snapshots, <plan>.<id> Events, the namespaces
// <plan>-val, <plan>-main and <plan>-test).
func readAudit(path string, plans map[string]bool) (*auditCounts, error) {
	if rotated, _ := filepath.Glob(strings.TrimSuffix(path, ".log") + "-*.log"); len(rotated) > 0 {
		return nil, fmt.Errorf("the audit log was rotated (%v): counts would be incomplete", rotated)
	}
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = file.Close() }()
	counts := &auditCounts{writes: newRequestCounts(), events: newRequestCounts(), reads: newRequestCounts()}
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for scanner.Scan() {
		var e auditEvent
		if err := json.Unmarshal(scanner.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if e.Stage != "ResponseComplete" && e.Stage != "Panic" || e.User.Username != testenv.ManagerAccount || e.Verb == "watch" {
			continue
		}
		kind, plan := e.Verb, ""
		if ref := e.ObjectRef; ref != nil {
			kind = ref.Resource
			if ref.Subresource != "" {
				kind += "/" + ref.Subresource
			}
			kind += " " + e.Verb
			plan = planOf(ref.Namespace, ref.Name, plans)
		}
		code := 0
		if e.ResponseStatus != nil {
			code = e.ResponseStatus.Code
		}
		switch {
		case !writeVerbs[e.Verb]:
			counts.reads.add(kind, plan, code)
		case e.ObjectRef != nil && e.ObjectRef.Resource == "events":
			counts.events.add(kind, plan, code)
		default:
			counts.writes.add(kind, plan, code)
			if plan == "" {
				counts.unattributed++
			}
		}
	}
	return counts, scanner.Err()
}

// planOf names the plan an object belongs to, from its namespace or name.
func planOf(namespace, name string, plans map[string]bool) string {
	for _, s := range []string{name, namespace} {
		prefix := s
		if i := strings.IndexAny(s, "-."); i >= 0 {
			prefix = s[:i]
		}
		if plans[prefix] {
			return prefix
		}
	}
	return ""
}
