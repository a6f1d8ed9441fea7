package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// JSONTime reads field (a dotted path) of the JSON the workspace answers
// at path, as a time: an RFC 3339 string, or a number of seconds or
// milliseconds since the epoch. A missing field is not an error (ok is
// false).
func (r *Runtime) JSONTime(ctx context.Context, ip string, port int, path, field string) (time.Time, bool, error) {
	doc, err := r.getJSON(ctx, ip, port, path)
	if err != nil {
		return time.Time{}, false, err
	}
	return timeAt(doc, field)
}

// JSONHas reports whether the JSON the workspace answers at path (an
// object, or a list of objects such as Jupyter's /api/kernels) has field
// equal to value.
func (r *Runtime) JSONHas(ctx context.Context, ip string, port int, path, field, value string) (bool, error) {
	doc, err := r.getJSON(ctx, ip, port, path)
	if err != nil {
		return false, err
	}
	return hasValue(doc, field, value), nil
}

// getJSON reads a workspace's JSON endpoint (at most 64 KiB: the workspace
// answers, and a huge answer must not cost the provisioner memory).
func (r *Runtime) getJSON(ctx context.Context, ip string, port int, path string) (any, error) {
	url := "http://" + net.JoinHostPort(ip, strconv.Itoa(port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	res, err := r.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("activity %s: %w", url, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("activity %s: HTTP %d", url, res.StatusCode)
	}
	var doc any
	if err := json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&doc); err != nil {
		return nil, fmt.Errorf("activity %s: %w", url, err)
	}
	return doc, nil
}

// hasValue: doc, or an element of it when it is a list, has field (a
// dotted path) equal to value (a string, or a number or boolean written
// as JSON writes it).
func hasValue(doc any, field, value string) bool {
	if list, ok := doc.([]any); ok {
		return slices.ContainsFunc(list, func(el any) bool { return hasValue(el, field, value) })
	}
	for _, part := range strings.Split(field, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return false
		}
		doc = m[part]
	}
	switch v := doc.(type) {
	case string:
		return v == value
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64) == value
	case bool:
		return strconv.FormatBool(v) == value
	}
	return false
}

// timeAt finds field in doc and reads it as a time.
func timeAt(doc any, field string) (time.Time, bool, error) {
	for _, part := range strings.Split(field, ".") {
		m, ok := doc.(map[string]any)
		if !ok {
			return time.Time{}, false, nil
		}
		doc = m[part]
	}
	switch v := doc.(type) {
	case nil:
		return time.Time{}, false, nil
	case string:
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("activity field %s: %q is not an RFC 3339 time", field, v)
		}
		return t, true, nil
	case float64:
		if v <= 0 {
			return time.Time{}, false, nil
		}
		if v > 1e12 { // milliseconds (code-server's lastHeartbeat)
			return time.UnixMilli(int64(v)), true, nil
		}
		return time.Unix(int64(v), 0), true, nil
	}
	return time.Time{}, false, fmt.Errorf("activity field %s: %v is not a time", field, doc)
}
