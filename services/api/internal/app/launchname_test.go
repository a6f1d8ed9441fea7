package app

import "testing"

func TestImageSlug(t *testing.T) {
	for ref, want := range map[string]string{
		"berth/workspace-desktop:latest":                         "desktop",
		"berth/workspace-jupyter":                                "jupyter",
		"example.org:5000/team/python:3.12":                      "python-3-12",
		"localhost:5000/IDE_Tools:v1":                            "ide-tools-v1",
		"ghcr.io/x/code-server@sha256:abcdef0":                   "code-server",
		"registry/workspace-":                                    "image",
		"a/very-long-image-name-for-a-course-of-many-tools:2026": "very-long-image-name-for",
	} {
		if got := imageSlug(ref); got != want {
			t.Errorf("imageSlug(%q) = %q, want %q", ref, got, want)
		}
		if f := validateName("alice--" + imageSlug(ref) + "-" + refHash(ref)); f != nil {
			t.Errorf("%q: the launch name is not valid: %s", ref, f.Message)
		}
	}
}
