package v1alpha1

import (
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
)

// Name is a DNS label: what Kubernetes accepts as a namespace or container
// name, and what changegate uses for components, targets, checks and jobs.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=63
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
type Name string

// TargetName names a PROD target. It becomes part of the annotation keys
// decision.<target> and decided-by.<target>, whose name part Kubernetes limits
// to 63 characters, so it is at most 52 characters long.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=64
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",message="must be a DNS label: lowercase letters, digits and '-', starting and ending with a letter or digit"
// +kubebuilder:validation:XValidation:rule="self.size() <= 52",message="must be at most 52 characters so that the annotation key decided-by.<target> stays within 63 characters"
type TargetName string

// ObjectName is the name of a Kubernetes object: a DNS subdomain.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",message="must be a Kubernetes object name: lowercase letters, digits, '-' and '.', starting and ending with a letter or digit"
type ObjectName string

// Version is an application version, used verbatim as the image tag.
//
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:XValidation:rule="self.size() == 0 || self.matches('^[A-Za-z0-9_][A-Za-z0-9_.-]*$')",message="must be a valid image tag: letters, digits, '_', '.' and '-', not starting with '.' or '-', at most 128 characters"
type Version string

// ImageRepository is a container image without tag or digest; changegate
// appends ":<version>" to it.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=255
// +kubebuilder:validation:XValidation:rule="self.matches('^[a-zA-Z0-9][a-zA-Z0-9.-]*((:[0-9]+)?/[a-z0-9]+([._-]+[a-z0-9]+)*)?(/[a-z0-9]+([._-]+[a-z0-9]+)*)*$')",message="must be an image repository without tag or digest, such as registry.example.org/clinspark/web; the version is the tag"
type ImageRepository string

// Duration is a length of time as Go writes it: 90s, 10m, 1h30m.
//
// +kubebuilder:validation:MaxLength=32
// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|ms|s|m|h))+$')",message="must be a duration such as 90s, 10m or 1h30m"
type Duration string

// Get parses the duration. The schema already guarantees the format, so an
// error means the object did not pass through the API server.
func (d Duration) Get() (time.Duration, error) {
	parsed, err := time.ParseDuration(string(d))
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: %w", d, err)
	}
	return parsed, nil
}

// GetOr returns the parsed duration, or def when the duration is empty or
// does not parse.
func (d Duration) GetOr(def time.Duration) time.Duration {
	if d == "" {
		return def
	}
	parsed, err := d.Get()
	if err != nil {
		return def
	}
	return parsed
}

// URL is an absolute http or https URL.
//
// +kubebuilder:validation:MaxLength=2048
// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname().size() > 0",message="must be an absolute http or https URL, such as https://docs.example.org/release/14.7"
type URL string

// Username is a Kubernetes username as the API server authenticates it.
//
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=253
// +kubebuilder:validation:XValidation:rule="!self.contains(',') && self.trim() == self",message="must be a single username without commas or surrounding spaces"
type Username string

// Approvers narrows who may approve. An empty list means anyone who holds the
// approve verb on upgradeplans.
type Approvers struct {
	// users may approve by username.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	Users []Username `json:"users,omitempty"`

	// groups may approve: any member of one of these groups.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:MinLength=1
	Groups []string `json:"groups,omitempty"`
}

// JobTemplate is a Job the operator runs at a given step: a hook, a backup or
// a restore. It runs in the namespace of the environment it belongs to.
type JobTemplate struct {
	// name identifies the job within its list; the Job the operator creates
	// is named after the plan, the step and this name.
	// +required
	Name Name `json:"name"`

	// template is the Job to create. Its pod template is validated by the API
	// server when the operator creates the Job; the schema here is kept open
	// so that a plan stays within the size limits of a Kubernetes object.
	// +required
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Template batchv1.JobTemplateSpec `json:"template"`
}

// Hooks are Jobs run around an environment's upgrade. A hook that fails stops
// the upgrade of that environment.
type Hooks struct {
	// preUpgrade Jobs run, in order, before any image is changed.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	PreUpgrade []JobTemplate `json:"preUpgrade,omitempty"`

	// postUpgrade Jobs run, in order, once every component has rolled out.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=8
	PostUpgrade []JobTemplate `json:"postUpgrade,omitempty"`
}

// Check is a test that gates progress. Exactly one of http, job and
// prometheus is set. The rollout of every component is always checked and
// needs no entry.
//
// +kubebuilder:validation:XValidation:rule="[has(self.http), has(self.job), has(self.prometheus)].filter(x, x).size() == 1",message="set exactly one of http, job or prometheus"
type Check struct {
	// name identifies the check in status.checks.
	// +required
	Name Name `json:"name"`

	// http passes when a GET returns the expected status and body.
	// +optional
	HTTP *HTTPCheck `json:"http,omitempty"`

	// job passes when a Job from this template succeeds.
	// +optional
	Job *JobCheck `json:"job,omitempty"`

	// prometheus passes when an instant query returns a value within bounds.
	// +optional
	Prometheus *PrometheusCheck `json:"prometheus,omitempty"`

	// interval between two attempts. Defaults to 10s.
	// +optional
	// +kubebuilder:default="10s"
	Interval Duration `json:"interval,omitempty"`

	// timeout of one attempt. Defaults to 5s for http and prometheus checks
	// and to 10m for job checks.
	// +optional
	Timeout Duration `json:"timeout,omitempty"`

	// successThreshold is how many consecutive passes make the check pass.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	SuccessThreshold int32 `json:"successThreshold,omitempty"`

	// failureThreshold is how many consecutive failures make the check fail.
	// +optional
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	FailureThreshold int32 `json:"failureThreshold,omitempty"`

	// soak is how long after the upgrade the check must keep passing.
	// +optional
	Soak Duration `json:"soak,omitempty"`
}

// HTTPCheck sends a GET request. Redirects are not followed.
type HTTPCheck struct {
	// url to GET, http or https.
	// +required
	URL URL `json:"url"`

	// expectedStatus is the HTTP status code that counts as a pass.
	// +optional
	// +kubebuilder:default=200
	// +kubebuilder:validation:Minimum=100
	// +kubebuilder:validation:Maximum=599
	ExpectedStatus int32 `json:"expectedStatus,omitempty"`

	// bodyContains, when set, must appear in the response body.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	BodyContains string `json:"bodyContains,omitempty"`
}

// JobCheck runs a Job in the environment's namespace.
type JobCheck struct {
	// template is the Job to run for each attempt.
	// +required
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Type=object
	Template batchv1.JobTemplateSpec `json:"template"`
}

// PrometheusCheck runs an instant query. The result must be a single number
// within [min, max]; an empty result or NaN fails.
//
// +kubebuilder:validation:XValidation:rule="has(self.min) || has(self.max)",message="set min, max or both"
// +kubebuilder:validation:XValidation:rule="!has(self.min) || !has(self.max) || self.min <= self.max",message="min must not be greater than max"
type PrometheusCheck struct {
	// address of the Prometheus server, such as http://prometheus.monitoring:9090.
	// +required
	Address URL `json:"address"`

	// query in PromQL, evaluated at the time of the attempt.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Query string `json:"query"`

	// min is the lowest passing value.
	// +optional
	Min *float64 `json:"min,omitempty"`

	// max is the highest passing value.
	// +optional
	Max *float64 `json:"max,omitempty"`
}
