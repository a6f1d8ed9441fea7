package httpapi

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/berthdev/berth/services/api/internal/oidclogin"
)

// oidcCookie carries a sign-in's state between the redirect to the
// identity provider and its answer.
const oidcCookie = "berth_oidc"

// oidcStart sends the browser to the identity provider.
func (h *handlers) oidcStart(c echo.Context) error {
	if h.o.OIDC == nil {
		return render(c, http.StatusNotFound, "error.html", map[string]string{"Title": "Sign-in is not set up",
			"Detail": "This Berth has no identity provider configured (BERTH_OIDC_ISSUER). Ask your administrator."})
	}
	to, state, err := h.o.OIDC.Start(c.Request().Context(), localPath(c.QueryParam("next")))
	if err != nil {
		h.o.Log.Warn("sign-in could not start", "err", err)
		return render(c, http.StatusServiceUnavailable, "error.html", map[string]string{"Title": "Sign-in is not available",
			"Detail": "The identity provider cannot be reached right now. Try again in a minute; if it persists, contact your administrator."})
	}
	c.SetCookie(&http.Cookie{Name: oidcCookie, Value: state, Path: "/ui/oidc/", MaxAge: 600, HttpOnly: true,
		Secure: h.o.CookieSecure, SameSite: http.SameSiteLaxMode})
	return c.Redirect(http.StatusFound, to)
}

// oidcCallback finishes the sign-in: the provider's answer must match the
// state cookie this browser got at the start (no sign-in another site
// began), the code is exchanged with the PKCE verifier, and the ID token
// must verify and carry this sign-in's nonce.
func (h *handlers) oidcCallback(c echo.Context) error {
	c.SetCookie(&http.Cookie{Name: oidcCookie, Value: "", Path: "/ui/oidc/", MaxAge: -1, HttpOnly: true,
		Secure: h.o.CookieSecure, SameSite: http.SameSiteLaxMode})
	if h.o.OIDC == nil {
		return render(c, http.StatusNotFound, "error.html", map[string]string{"Title": "Sign-in is not set up", "Detail": "No identity provider is configured."})
	}
	if reason := c.QueryParam("error"); reason != "" {
		return h.signInFailed(c, http.StatusForbidden, "The identity provider did not sign you in ("+reason+").")
	}
	state, _ := c.Cookie(oidcCookie)
	if state == nil {
		return h.signInFailed(c, http.StatusBadRequest, "The sign-in expired or was started in another browser. Start again.")
	}
	p, next, err := h.o.OIDC.Finish(c.Request().Context(), state.Value, c.QueryParam("state"), c.QueryParam("code"))
	switch {
	case errors.Is(err, oidclogin.ErrState):
		return h.signInFailed(c, http.StatusBadRequest, "The sign-in expired or was started elsewhere. Start again.")
	case errors.Is(err, oidclogin.ErrProvider):
		h.o.Log.Warn("sign-in failed", "err", err)
		return h.signInFailed(c, http.StatusServiceUnavailable, "The identity provider cannot be reached right now. Try again in a minute.")
	case err != nil:
		h.o.Log.Warn("sign-in refused", "err", err)
		return h.signInFailed(c, http.StatusForbidden, "The identity provider's answer was refused: "+err.Error())
	case !p.User && !p.Auditor:
		return h.signInFailed(c, http.StatusForbidden, "You are signed in at your identity provider, but it gives you no Berth role (user, admin or auditor). Ask your administrator.")
	}
	return h.startSession(c, p, localPath(next))
}

func (h *handlers) signInFailed(c echo.Context, status int, why string) error {
	return render(c, status, "signin.html", signInData{Next: "/", Dev: h.devSignInAllowed(c), OIDC: h.o.OIDC != nil, OIDCName: h.o.OIDCName, Reason: why})
}
