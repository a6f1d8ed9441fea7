package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/berthdev/berth/pkg/events/auditchain"
)

type auditCmd struct {
	List   auditListCmd   `cmd:"" default:"withargs" help:"Entries matching the filters (the default)."`
	Export auditExportCmd `cmd:"" help:"The log as a hash-chained NDJSON export, verified as it is written: > FILE."`
	Verify auditVerifyCmd `cmd:"" help:"Check an export offline: exits 1 naming the first bad line."`
	Tail   auditTailCmd   `cmd:"" help:"The last entries, then (-f) every new one as it comes."`
}

// auditEntry is what berthctl prints of one audit entry.
type auditEntry struct {
	Sequence  uint64    `json:"sequence"`
	Time      time.Time `json:"time"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	Workspace *struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	} `json:"workspace"`
	Reason string `json:"reason"`
}

// workspace names the entry's workspace ("-": none).
func (e auditEntry) workspace() string {
	switch {
	case e.Workspace == nil:
		return "-"
	case e.Workspace.Name != "":
		return e.Workspace.Name
	}
	return e.Workspace.ID
}

type auditListCmd struct {
	Actor     string `help:"Only this actor, e.g. user:alice, system:lms, service:reaper."`
	Type      string `help:"Only this event type, e.g. berth.workspace.start_requested."`
	Workspace string `help:"Only this workspace (id or name)." predictor:"workspace"`
	Since     string `help:"From this moment (RFC 3339)."`
	Until     string `help:"Until this moment (RFC 3339)."`
	Oldest    bool   `help:"Oldest first (default newest first)."`
	Limit     int    `default:"100" help:"Entries to print at most."`
	Output    string `short:"o" enum:"table,json,jsonl" default:"table" help:"table, json or jsonl."`
}

func (x *auditListCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"actor": x.Actor, "type": x.Type, "workspace": x.Workspace, "since": x.Since, "until": x.Until} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if x.Oldest {
		q.Set("order", "oldest")
	}
	var entries []json.RawMessage
	for cursor := ""; len(entries) < x.Limit; {
		q.Set("limit", strconv.Itoa(min(x.Limit-len(entries), 1000)))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Entries []json.RawMessage `json:"entries"`
			Next    uint64            `json:"next"`
		}
		if err := c.getJSON(e.ctx, "/api/v1/audit?"+q.Encode(), &page); err != nil {
			return err
		}
		entries = append(entries, page.Entries...)
		if page.Next == 0 {
			break
		}
		cursor = strconv.FormatUint(page.Next, 10)
	}
	return printAudit(e.out, x.Output, entries)
}

func printAudit(out io.Writer, format string, entries []json.RawMessage) error {
	switch format {
	case "json":
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(entries)
	case "jsonl":
		for _, e := range entries {
			if _, err := fmt.Fprintf(out, "%s\n", e); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tWORKSPACE\tREASON")
	for _, raw := range entries {
		var e auditEntry
		if err := json.Unmarshal(raw, &e); err != nil {
			return fmt.Errorf("audit entry: %w", err)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Sequence, e.Time.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.workspace(), e.Reason)
	}
	return tw.Flush()
}

// auditTailCmd prints the last entries, then (-f) every new one as it
// is appended, until interrupted.
type auditTailCmd struct {
	N      int           `short:"n" default:"10" help:"Entries to print first."`
	Follow bool          `short:"f" help:"Keep printing new entries."`
	Every  time.Duration `default:"1s" help:"How often to ask for new entries with -f."`
}

func (x *auditTailCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	var last struct {
		Entries []json.RawMessage `json:"entries"`
	}
	if err := c.getJSON(e.ctx, fmt.Sprintf("/api/v1/audit?limit=%d", max(x.N, 1)), &last); err != nil {
		return err
	}
	slices.Reverse(last.Entries) // oldest first, as a tail reads
	if err := printAudit(e.out, "table", last.Entries[:min(len(last.Entries), x.N)]); err != nil {
		return err
	}
	if !x.Follow {
		return nil
	}
	cursor := uint64(0)
	if len(last.Entries) > 0 {
		var entry auditEntry
		_ = json.Unmarshal(last.Entries[len(last.Entries)-1], &entry)
		cursor = entry.Sequence
	}
	return c.followAudit(context.WithoutCancel(e.ctx), e.out, cursor, x.Every)
}

// followAudit prints the entries after cursor, oldest first, as they come.
func (c *client) followAudit(ctx context.Context, out io.Writer, cursor uint64, every time.Duration) error {
	for {
		var page struct {
			Entries []json.RawMessage `json:"entries"`
		}
		q := "/api/v1/audit?order=oldest&limit=1000"
		if cursor > 0 {
			q += "&cursor=" + strconv.FormatUint(cursor, 10)
		}
		if err := c.getJSON(ctx, q, &page); err != nil {
			return err
		}
		for _, raw := range page.Entries {
			var e auditEntry
			if err := json.Unmarshal(raw, &e); err != nil {
				return fmt.Errorf("audit entry: %w", err)
			}
			if _, err := fmt.Fprintf(out, "%d\t%s\t%s\t%s\t%s\t%s\n", e.Sequence, e.Time.Local().Format("2006-01-02 15:04:05"), e.Actor, e.Action, e.workspace(), e.Reason); err != nil {
				return err
			}
			cursor = e.Sequence
		}
		time.Sleep(every)
	}
}

// auditExportCmd writes the hash-chained export to out as the API
// streams it.
type auditExportCmd struct {
	Since string `help:"First moment (RFC 3339)."`
	Until string `help:"Last moment (RFC 3339)."`
}

func (x *auditExportCmd) Run(e *env) error {
	c, err := e.client()
	if err != nil {
		return err
	}
	q := url.Values{}
	if x.Since != "" {
		q.Set("since", x.Since)
	}
	if x.Until != "" {
		q.Set("until", x.Until)
	}
	// A large log takes longer than the usual request timeout: the export
	// runs until the API has sent it all (or the user interrupts).
	long := *c
	long.http = &http.Client{Transport: c.http.Transport}
	res, err := long.send(context.WithoutCancel(e.ctx), http.MethodGet, "/api/v1/audit/export?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	// Checked as it is written: an export the API cut short (it has no
	// trailer) or that does not hold fails here, not at a later verify.
	n, err := auditchain.Verify(io.TeeReader(res.Body, e.out))
	if err != nil {
		return fmt.Errorf("the export does not verify (cut short or altered in transit): %w", err)
	}
	fmt.Fprintf(e.errOut, "exported %d events; the file verifies\n", n)
	return nil
}

// auditVerifyCmd checks an export file offline (no token needed).
type auditVerifyCmd struct {
	File string `arg:"" help:"The export (- for standard input)." predictor:"file"`
}

func (x *auditVerifyCmd) Run(e *env) error {
	in := io.Reader(os.Stdin)
	if x.File != "-" {
		f, err := os.Open(x.File)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	n, err := auditchain.Verify(bufio.NewReader(in))
	if err != nil {
		return fmt.Errorf("%s does not verify: %w", x.File, err)
	}
	fmt.Fprintf(e.out, "%s: intact, %d events\n", x.File, n)
	return nil
}
