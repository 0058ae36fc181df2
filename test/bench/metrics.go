package main

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// sample is one line of the Prometheus text format: a metric name, its
// labels and its value.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// metrics are the samples of one scrape.
type metrics []sample

// parseMetrics reads the Prometheus text exposition format, as the
// manager's metrics endpoint serves it. Comments are skipped; label values
// may hold escaped quotes.
func parseMetrics(r io.Reader) (metrics, error) {
	var out metrics
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	for scanner.Scan() {
		line := strings.TrimSpace(scanner.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, scanner.Err()
}

func parseSample(line string) (sample, error) {
	s := sample{labels: map[string]string{}}
	rest := line
	if i := strings.IndexAny(line, "{ "); i < 0 {
		return s, fmt.Errorf("metric line without a value: %q", line)
	} else {
		s.name, rest = line[:i], line[i:]
	}
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			eq := strings.Index(rest, `="`)
			if eq < 0 {
				return s, fmt.Errorf("malformed labels in %q", line)
			}
			key := strings.TrimPrefix(rest[:eq], ",")
			rest = rest[eq+2:]
			var value strings.Builder
			for {
				if rest == "" {
					return s, fmt.Errorf("unterminated label value in %q", line)
				}
				c := rest[0]
				rest = rest[1:]
				if c == '"' {
					break
				}
				if c == '\\' && rest != "" {
					switch rest[0] {
					case 'n':
						value.WriteByte('\n')
					default:
						value.WriteByte(rest[0])
					}
					rest = rest[1:]
					continue
				}
				value.WriteByte(c)
			}
			s.labels[key] = value.String()
			rest = strings.TrimPrefix(rest, ",")
		}
		rest = rest[1:]
	}
	fields := strings.Fields(rest)
	if len(fields) == 0 {
		return s, fmt.Errorf("metric line without a value: %q", line)
	}
	value, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value of %q: %w", line, err)
	}
	s.value = value
	return s, nil
}

// sum adds the samples of a metric whose label has the value; with an empty
// label, every sample of the metric.
func (m metrics) sum(name, label, value string) float64 {
	var total float64
	for _, s := range m {
		if s.name == name && (label == "" || s.labels[label] == value) {
			total += s.value
		}
	}
	return total
}

// has reports whether the metric has a sample whose label has the value.
func (m metrics) has(name, label, value string) bool {
	for _, s := range m {
		if s.name == name && s.labels[label] == value {
			return true
		}
	}
	return false
}

// by sums a metric by the values of one label, keeping only samples whose
// filter label has the filter value (no filter when filterLabel is empty).
func (m metrics) by(name, label, filterLabel, filterValue string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range m {
		if s.name == name && (filterLabel == "" || s.labels[filterLabel] == filterValue) {
			out[s.labels[label]] += s.value
		}
	}
	return out
}
