package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/posener/complete"
)

// completionCmd prints the script that makes a shell ask berthctl itself
// for completions (COMP_LINE: see kongplete).
type completionCmd struct {
	Shell string `arg:"" enum:"bash,zsh,fish" help:"bash, zsh or fish."`
}

func (x *completionCmd) Run(e *env) error {
	bin, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find berthctl's own path: %w", err)
	}
	if bin, err = filepath.Abs(bin); err != nil {
		return fmt.Errorf("find berthctl's own path: %w", err)
	}
	bin = shellQuote(bin)
	var script string
	switch x.Shell {
	case "bash":
		script = fmt.Sprintf("complete -C %s berthctl\n", bin)
	case "zsh":
		script = fmt.Sprintf("autoload -U +X bashcompinit && bashcompinit\ncomplete -C %s berthctl\n", bin)
	case "fish":
		script = fmt.Sprintf(`function __complete_berthctl
    set -lx COMP_LINE (commandline -cp)
    test -z (commandline -ct)
    and set COMP_LINE "$COMP_LINE "
    %s
end
complete -f -c berthctl -a "(__complete_berthctl)"
`, bin)
	}
	_, err = fmt.Fprint(e.out, script)
	return err
}

// shellQuote quotes s for sh, bash, zsh and fish: single quotes, with
// each ' written as '\”.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// workspacePredictor completes workspace names from the API, with the
// token and URL of the environment (BERTH_TOKEN, BERTH_API_URL); without
// them, or when the API does not answer within a second, it offers none.
func workspacePredictor() complete.Predictor {
	return complete.PredictFunc(func(a complete.Args) []string {
		token := os.Getenv("BERTH_TOKEN")
		if token == "" {
			return nil
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c := &client{base: strings.TrimRight(envOr("BERTH_API_URL", "http://127.0.0.1:8080"), "/"), token: token, http: http.DefaultClient}
		var list struct {
			Workspaces []struct {
				Name string `json:"name"`
			} `json:"workspaces"`
		}
		b, err := c.do(ctx, http.MethodGet, "/api/v1/workspaces", nil)
		if err != nil || json.Unmarshal(b, &list) != nil {
			return nil
		}
		var names []string
		for _, w := range list.Workspaces {
			if strings.HasPrefix(w.Name, a.Last) {
				names = append(names, w.Name)
			}
		}
		return names
	})
}
