package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// deadLetter is one dead letter as the API lists it (its message is left
// to deadletter show).
type deadLetter struct {
	Sequence        uint64    `json:"sequence"`
	Time            time.Time `json:"time"`
	Consumer        string    `json:"consumer"`
	Reason          string    `json:"reason"`
	OriginalSubject string    `json:"original_subject"`
}

// maxPage is the most dead letters the API returns at once.
const maxPage = 1000

type deadLetterCmd struct {
	List  deadLetterListCmd  `cmd:"" default:"withargs" help:"Dead letters with the reason, oldest first (the default)."`
	Show  deadLetterShowCmd  `cmd:"" help:"One dead letter with its message."`
	Retry deadLetterRetryCmd `cmd:"" help:"Hand a dead letter back to its consumer (provisioner only)."`
}

// seqArg is the dead letter a command acts on.
type seqArg struct {
	Seq string `arg:"" help:"Its sequence (the SEQ column of deadletter list)."`
}

// client checks the sequence, then the token.
func (a seqArg) client(e *env) (*client, uint64, error) {
	seq, err := parseSeq(a.Seq)
	if err != nil {
		return nil, 0, err
	}
	c, err := e.client()
	return c, seq, err
}

type deadLetterShowCmd struct{ seqArg }

func (x *deadLetterShowCmd) Run(e *env) error {
	c, seq, err := x.client(e)
	if err != nil {
		return err
	}
	return c.print(e.ctx, e.out, "GET", fmt.Sprintf("/api/v1/deadletters/%d", seq), nil)
}

type deadLetterRetryCmd struct{ seqArg }

func (x *deadLetterRetryCmd) Run(e *env) error {
	c, seq, err := x.client(e)
	if err != nil {
		return err
	}
	return c.deadLetterRetry(e.ctx, e.out, seq)
}

// parseSeq reads a dead letter's sequence, as deadletter list shows it.
func parseSeq(s string) (uint64, error) {
	seq, err := strconv.ParseUint(s, 10, 63)
	if err != nil || seq == 0 {
		return 0, fmt.Errorf("dead letter %q: want its sequence, an integer >= 1 (the SEQ column of deadletter list)", s)
	}
	return seq, nil
}

// deadLetterListCmd prints dead letters as a table, oldest first: every
// one after --after, or the first --limit of them.
type deadLetterListCmd struct {
	After uint64 `help:"Only dead letters after this sequence."`
	Limit int    `help:"At most this many (0: all)."`
}

func (x *deadLetterListCmd) Run(e *env) error {
	if x.Limit < 0 {
		return fmt.Errorf("--limit %d: want 0 (all) or more", x.Limit)
	}
	c, err := e.client()
	if err != nil {
		return err
	}
	entries, next, err := c.deadLetterPages(e.ctx, x.After, x.Limit)
	if err != nil {
		return err
	}
	if err := printDeadLetters(e.out, entries, isTerminal(e.out)); err != nil {
		return err
	}
	if next > 0 {
		fmt.Fprintf(e.errOut, "more follow: berthctl deadletter list --after %d\n", next)
	}
	return nil
}

// deadLetterPages follows the API's pages until limit entries (0: all)
// are read; next is where more follow (0: none).
func (c *client) deadLetterPages(ctx context.Context, after uint64, limit int) (entries []deadLetter, next uint64, err error) {
	for {
		n := maxPage
		if limit > 0 {
			n = min(n, limit-len(entries))
		}
		b, err := c.do(ctx, "GET", fmt.Sprintf("/api/v1/deadletters?limit=%d&after=%d", n, after), nil)
		if err != nil {
			return nil, 0, err
		}
		var page struct {
			Entries []deadLetter `json:"entries"`
			Next    uint64       `json:"next"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, 0, fmt.Errorf("dead letters after %d: %w", after, err)
		}
		entries = append(entries, page.Entries...)
		if page.Next == 0 || page.Next <= after {
			return entries, 0, nil
		}
		after = page.Next
		if limit > 0 && len(entries) >= limit {
			return entries, after, nil
		}
	}
}

// printDeadLetters writes a table: columns aligned for a person at a
// terminal, separated by one tab for scripts (cut -f, awk -F'\t').
func printDeadLetters(out io.Writer, entries []deadLetter, aligned bool) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintln(out, "no dead letters")
		return err
	}
	w := out
	var tw *tabwriter.Writer
	if aligned {
		tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
		w = tw
	}
	fmt.Fprintln(w, "SEQ\tTIME\tCONSUMER\tORIGINAL SUBJECT\tREASON")
	for _, e := range entries {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", e.Sequence, e.Time.UTC().Format(time.RFC3339),
			cell(e.Consumer), cell(e.OriginalSubject), cell(e.Reason))
	}
	if tw != nil {
		return tw.Flush()
	}
	return nil
}

// isTerminal reports whether out is a terminal (a person reads it).
func isTerminal(out io.Writer) bool {
	f, ok := out.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// cell keeps a value on its line and in its column (tabs and newlines in
// a reason become spaces).
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.Join(strings.Fields(s), " ")
}

// deadLetterRetry hands a dead letter back to its consumer and says what
// was published.
func (c *client) deadLetterRetry(ctx context.Context, out io.Writer, seq uint64) error {
	b, err := c.do(ctx, "POST", fmt.Sprintf("/api/v1/deadletters/%d/retry", seq), nil)
	if err != nil {
		return err
	}
	var r struct {
		Retried         uint64 `json:"retried"`
		Consumer        string `json:"consumer"`
		RedriveSequence uint64 `json:"redrive_sequence"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("retry dead letter %d: %w", seq, err)
	}
	_, err = fmt.Fprintf(out, "dead letter %d handed back to %s: its message was published on berth.redrive.%s (BERTH_DEADLETTER sequence %d)\n",
		r.Retried, r.Consumer, r.Consumer, r.RedriveSequence)
	return err
}
