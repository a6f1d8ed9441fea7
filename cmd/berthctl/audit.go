package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthdev/berth/pkg/events/auditchain"
)

// auditCommand runs `audit [filters]`, `audit export`, `audit verify FILE`.
func (c *client) auditCommand(ctx context.Context, out io.Writer, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "export":
			return c.auditExport(ctx, out, args[1:])
		case "verify":
			return auditVerify(out, args[1:])
		case "tail":
			return c.auditTail(ctx, out, args[1:])
		}
	}
	return c.auditList(ctx, out, args)
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

func (c *client) auditList(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("audit", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	q := url.Values{}
	for _, name := range []string{"actor", "type", "workspace", "since", "until"} {
		fs.Func(name, "filter by "+name+" (since/until: RFC 3339)", func(v string) error { q.Set(name, v); return nil })
	}
	oldest := fs.Bool("oldest", false, "oldest first (default newest first)")
	limit := fs.Int("limit", 100, "entries to print at most")
	format := fs.String("o", "table", "output: table, json or jsonl")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *format != "table" && *format != "json" && *format != "jsonl" {
		return fmt.Errorf("-o %q: want table, json or jsonl", *format)
	}
	if *oldest {
		q.Set("order", "oldest")
	}
	var entries []json.RawMessage
	for cursor := ""; len(entries) < *limit; {
		q.Set("limit", strconv.Itoa(min(*limit-len(entries), 1000)))
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		var page struct {
			Entries []json.RawMessage `json:"entries"`
			Next    uint64            `json:"next"`
		}
		if err := c.getJSON(ctx, "/api/v1/audit?"+q.Encode(), &page); err != nil {
			return err
		}
		entries = append(entries, page.Entries...)
		if page.Next == 0 {
			break
		}
		cursor = strconv.FormatUint(page.Next, 10)
	}
	return printAudit(out, *format, entries)
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

// auditTail prints the last entries, then (-f) every new one as it is
// appended, until interrupted.
func (c *client) auditTail(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("audit tail", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	follow := fs.Bool("f", false, "keep printing new entries")
	n := fs.Int("n", 10, "entries to print first")
	every := fs.Duration("every", time.Second, "how often to ask for new entries with -f")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var last struct {
		Entries []json.RawMessage `json:"entries"`
	}
	if err := c.getJSON(ctx, fmt.Sprintf("/api/v1/audit?limit=%d", max(*n, 1)), &last); err != nil {
		return err
	}
	slices.Reverse(last.Entries) // oldest first, as a tail reads
	if err := printAudit(out, "table", last.Entries[:min(len(last.Entries), *n)]); err != nil {
		return err
	}
	if !*follow {
		return nil
	}
	cursor := uint64(0)
	if len(last.Entries) > 0 {
		var e auditEntry
		_ = json.Unmarshal(last.Entries[len(last.Entries)-1], &e)
		cursor = e.Sequence
	}
	return c.followAudit(context.WithoutCancel(ctx), out, cursor, *every)
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

// auditExport writes the hash-chained export to out as the API streams it.
func (c *client) auditExport(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	since := fs.String("since", "", "first moment (RFC 3339)")
	until := fs.String("until", "", "last moment (RFC 3339)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	q := url.Values{}
	if *since != "" {
		q.Set("since", *since)
	}
	if *until != "" {
		q.Set("until", *until)
	}
	// A large log takes longer than the usual request timeout: the export
	// runs until the API has sent it all (or the user interrupts).
	long := *c
	long.http = &http.Client{Transport: c.http.Transport}
	res, err := long.send(context.WithoutCancel(ctx), http.MethodGet, "/api/v1/audit/export?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	// Checked as it is written: an export the API cut short (it has no
	// trailer) or that does not hold fails here, not at a later verify.
	n, err := auditchain.Verify(io.TeeReader(res.Body, out))
	if err != nil {
		return fmt.Errorf("the export does not verify (cut short or altered in transit): %w", err)
	}
	fmt.Fprintf(c.errOut, "exported %d events; the file verifies\n", n)
	return nil
}

// auditVerify checks an export file offline.
func auditVerify(out io.Writer, args []string) error {
	if len(args) != 1 {
		return errors.New("audit verify takes one file (- for standard input)")
	}
	in := io.Reader(os.Stdin)
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	n, err := auditchain.Verify(bufio.NewReader(in))
	if err != nil {
		return fmt.Errorf("%s does not verify: %w", args[0], err)
	}
	fmt.Fprintf(out, "%s: intact, %d events\n", args[0], n)
	return nil
}

// state prints a workspace as it was at a moment.
func (c *client) state(ctx context.Context, out io.Writer, args []string) error {
	fs := flag.NewFlagSet("state", flag.ContinueOnError)
	fs.SetOutput(c.errOut)
	at := fs.String("at", "", "the moment (RFC 3339), e.g. 2026-11-24T14:02:00Z")
	if err := fs.Parse(reorder(args)); err != nil {
		return err
	}
	if fs.NArg() != 1 || *at == "" {
		return errors.New("usage: berthctl state <workspace> --at <RFC 3339 time>")
	}
	if _, err := time.Parse(time.RFC3339Nano, *at); err != nil {
		return fmt.Errorf("--at %q: want an RFC 3339 time, e.g. 2026-11-24T14:02:00Z", *at)
	}
	id, err := c.resolve(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	return c.print(ctx, out, http.MethodGet, "/api/v1/workspaces/"+id+"/state?at="+url.QueryEscape(*at), nil)
}

// reorder puts flags before the positional arguments, so `state ws --at T`
// parses like `state --at T ws`. Flags take the next argument as their
// value unless written flag=value or named in bools.
func reorder(args []string, bools ...string) []string {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if !strings.Contains(a, "=") && !slices.Contains(bools, name) && i+1 < len(args) {
			flags = append(flags, args[i+1])
			i++
		}
	}
	return append(flags, pos...)
}

// getJSON GETs path and decodes the answer into v.
func (c *client) getJSON(ctx context.Context, path string, v any) error {
	b, err := c.do(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
