// Command probe is the health check of Berth's FROM-scratch images, which
// have no shell or curl: it GETs a URL and exits 0 on 200, 1 otherwise.
package main

import (
	"fmt"
	"net/http"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: probe URL")
		os.Exit(2)
	}
	os.Exit(check(os.Args[1]))
}

func check(url string) int {
	res, err := (&http.Client{Timeout: 3 * time.Second}).Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return 1
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintln(os.Stderr, "probe:", url, res.Status)
		return 1
	}
	return 0
}
