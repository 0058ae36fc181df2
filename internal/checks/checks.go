// Package checks runs one attempt of an HTTP or Prometheus check and folds
// attempts, of any kind, into a check's state: consecutive passes and
// failures against the thresholds, and the soak time. It has no Kubernetes
// client; the reconciler schedules the attempts.
package checks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	upgradesv1alpha1 "github.com/changegate/changegate/api/v1alpha1"
)

// MaxBody is how much of a response body an attempt reads.
const MaxBody = 1 << 20

// Default timeouts of one attempt.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultJobTimeout = 10 * time.Minute
	DefaultInterval   = 10 * time.Second
)

// Result is the outcome of one attempt.
type Result struct {
	Passed  bool
	Message string
}

func pass(format string, args ...any) Result {
	return Result{Passed: true, Message: fmt.Sprintf(format, args...)}
}

func fail(format string, args ...any) Result {
	return Result{Message: fmt.Sprintf(format, args...)}
}

// NewHTTPClient returns the client checks use: it never follows a redirect,
// so that a login page redirecting elsewhere is seen for what it is.
func NewHTTPClient() *http.Client {
	return &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Timeout is the per-attempt timeout of a check.
func Timeout(check upgradesv1alpha1.Check) time.Duration {
	if check.Job != nil {
		return check.Timeout.GetOr(DefaultJobTimeout)
	}
	return check.Timeout.GetOr(DefaultTimeout)
}

// HTTP makes one GET. It passes when the status is the expected one (200 by
// default) and, when bodyContains is set, the first MaxBody bytes of the
// body contain it.
func HTTP(ctx context.Context, client *http.Client, check upgradesv1alpha1.HTTPCheck, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	target := string(check.URL)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return fail("GET %s: %v", target, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail("GET %s: no answer within %s", target, timeout)
		}
		return fail("GET %s: %v", target, err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return fail("GET %s: reading the body: %v", target, err)
	}
	want := int(check.ExpectedStatus)
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		if location := resp.Header.Get("Location"); location != "" && resp.StatusCode >= 300 && resp.StatusCode < 400 {
			return fail("GET %s: status %d redirecting to %s (redirects are not followed), want %d", target, resp.StatusCode, location, want)
		}
		return fail("GET %s: status %d, want %d", target, resp.StatusCode, want)
	}
	if check.BodyContains != "" && !strings.Contains(string(body), check.BodyContains) {
		return fail("GET %s: status %d but the body (first %d bytes read) lacks %q", target, resp.StatusCode, len(body), check.BodyContains)
	}
	return pass("GET %s: status %d", target, resp.StatusCode)
}

// Prometheus runs an instant query at time at and checks that it returns
// exactly one number within [min, max].
func Prometheus(ctx context.Context, client *http.Client, check upgradesv1alpha1.PrometheusCheck, timeout time.Duration, at time.Time) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	endpoint := strings.TrimSuffix(string(check.Address), "/") + "/api/v1/query?" + url.Values{
		"query": {check.Query},
		"time":  {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)},
	}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return fail("query %q: %v", check.Query, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fail("query %q: no answer from %s within %s", check.Query, check.Address, timeout)
		}
		return fail("query %q: %v", check.Query, err)
	}
	defer func() { _ = resp.Body.Close() }()
	var answer struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, MaxBody)).Decode(&answer); err != nil {
		return fail("query %q: %s answered with status %d and no Prometheus response: %v", check.Query, check.Address, resp.StatusCode, err)
	}
	if answer.Status != "success" {
		return fail("query %q failed: %s", check.Query, answer.Error)
	}
	value, problem := singleValue(answer.Data.ResultType, answer.Data.Result)
	if problem != "" {
		return fail("query %q %s", check.Query, problem)
	}
	if math.IsNaN(value) {
		return fail("query %q returned NaN", check.Query)
	}
	if check.Min != nil && value < *check.Min {
		return fail("query %q returned %g, below the minimum %g", check.Query, value, *check.Min)
	}
	if check.Max != nil && value > *check.Max {
		return fail("query %q returned %g, above the maximum %g", check.Query, value, *check.Max)
	}
	return pass("query %q returned %g", check.Query, value)
}

// singleValue reads the one number of a scalar or one-sample vector result.
func singleValue(resultType string, raw json.RawMessage) (float64, string) {
	var sample []any
	switch resultType {
	case "scalar":
		if err := json.Unmarshal(raw, &sample); err != nil {
			return 0, "returned a malformed scalar"
		}
	case "vector":
		var series []struct {
			Value []any `json:"value"`
		}
		if err := json.Unmarshal(raw, &series); err != nil {
			return 0, "returned a malformed vector"
		}
		switch len(series) {
		case 0:
			return 0, "returned no samples (an empty result): nothing to compare"
		case 1:
			sample = series[0].Value
		default:
			return 0, fmt.Sprintf("returned %d series; a check needs exactly one (aggregate it, e.g. with sum())", len(series))
		}
	default:
		return 0, fmt.Sprintf("returned a %s; a check needs a scalar or a single sample", resultType)
	}
	if len(sample) != 2 {
		return 0, "returned a malformed sample"
	}
	text, ok := sample[1].(string)
	if !ok {
		return 0, "returned a malformed sample value"
	}
	value, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return 0, fmt.Sprintf("returned %q, not a number", text)
	}
	return value, ""
}

// Record folds one attempt into the check's status. A check fails once
// failureThreshold consecutive attempts failed; it passes once
// successThreshold consecutive attempts passed and soak has gone by since
// since (the end of the upgrade). A failed check stays failed.
func Record(status upgradesv1alpha1.CheckStatus, check upgradesv1alpha1.Check, result Result, since, now time.Time) upgradesv1alpha1.CheckStatus {
	if status.State == upgradesv1alpha1.CheckFailed {
		return status
	}
	at := metav1.NewTime(now)
	status.LastRunAt = &at
	status.Attempts++
	status.Message = truncate(result.Message, 1024)
	if result.Passed {
		status.Successes, status.Failures = status.Successes+1, 0
	} else {
		status.Successes, status.Failures = 0, status.Failures+1
	}
	switch {
	case status.Failures >= max(1, check.FailureThreshold):
		status.State = upgradesv1alpha1.CheckFailed
	case status.Successes >= max(1, check.SuccessThreshold) && !now.Before(since.Add(check.Soak.GetOr(0))):
		status.State = upgradesv1alpha1.CheckPassed
	default:
		status.State = upgradesv1alpha1.CheckRunning
	}
	return status
}

// Due is when the next attempt of the check is due.
func Due(status upgradesv1alpha1.CheckStatus, check upgradesv1alpha1.Check) time.Time {
	if status.LastRunAt == nil {
		return time.Time{}
	}
	return status.LastRunAt.Add(check.Interval.GetOr(DefaultInterval))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}
