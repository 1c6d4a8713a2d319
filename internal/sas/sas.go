// Package sas holds Azure IoT Hub credentials: connection strings and shared access signature
// (SAS) tokens, both as the SDKs make them and as the hub checks them (see
// https://learn.microsoft.com/azure/iot-hub/iot-hub-dev-guide-sas). It is used by iotplan's hub client (to sign requests) and
// by the local hub (to verify them), so both sides agree on one implementation.
//
// Secrets: no error from this package ever contains a key, a signature, or the raw connection
// string, because those errors end up on terminals and in CI logs.
//
// Every error says which check failed through a sentinel (ErrMalformed, ErrSignature,
// ErrExpired, ErrNoKey, ErrConnectionString, ErrKey): callers decide with errors.Is, never by
// the text, which is for people.
package sas

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The checks a token or a connection string can fail. Texts are the start of the messages
// people see; the hub's REST API passes them on in its 401 messages.
var (
	// ErrMalformed: ParseToken found no SharedAccessSignature token, or a broken one.
	ErrMalformed = errors.New("malformed SharedAccessSignature token")
	// ErrSignature: no key given to Token.Verify made the token's signature.
	ErrSignature = errors.New("signature does not match")
	// ErrExpired: the token was signed with one of the keys but its se time has passed.
	ErrExpired = errors.New("token has expired")
	// ErrNoKey: Token.Verify had no usable key (none set, or none valid base64) to check
	// the signature with: a fault of the verifier's configuration, not of the token.
	ErrNoKey = errors.New("no valid key to verify the token against")
	// ErrConnectionString: ParseConnectionString refused its input.
	ErrConnectionString = errors.New("connection string")
	// ErrKey: NewToken was given a key that is not base64.
	ErrKey = errors.New("sas: key is not valid base64")
)

// failure is an error that reads as msg and matches kind with errors.Is, for messages that
// do not start with their sentinel's text.
type failure struct {
	kind error
	msg  string
}

func (f *failure) Error() string { return f.msg }
func (f *failure) Unwrap() error { return f.kind }

// csError is a ParseConnectionString error: "connection string: <msg>".
func csError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrConnectionString}, args...)...)
}

// tokenError is a ParseToken error: "malformed SharedAccessSignature token: <msg>".
func tokenError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// ConnectionString is a parsed IoT Hub connection string: a service one
// (HostName;SharedAccessKeyName;SharedAccessKey) or a device one (HostName;DeviceId;SharedAccessKey,
// optionally ModuleId).
type ConnectionString struct {
	HostName            string
	SharedAccessKeyName string
	SharedAccessKey     string
	DeviceID            string
	ModuleID            string
}

// The field names as Azure writes them; parsing matches them case-insensitively.
var csFields = []string{"HostName", "SharedAccessKeyName", "SharedAccessKey", "DeviceId", "ModuleId"}

// ParseConnectionString parses s. Errors are one line and never contain the key or the raw
// string; unknown fields are reported by position only (an unknown "field" may be a pasted key).
func ParseConnectionString(s string) (ConnectionString, error) {
	var c ConnectionString
	s = strings.TrimSpace(s)
	if s == "" {
		return c, &failure{ErrConnectionString, "connection string is empty"}
	}
	seen := map[string]bool{}
	n := 0
	for part := range strings.SplitSeq(s, ";") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n++
		name, value, ok := strings.Cut(part, "=")
		if !ok {
			return ConnectionString{}, csError("field %d is not of the form Name=value", n)
		}
		canon := ""
		for _, f := range csFields {
			if strings.EqualFold(strings.TrimSpace(name), f) {
				canon = f
			}
		}
		if canon == "" {
			return ConnectionString{}, csError("field %d has an unknown name (expected HostName, SharedAccessKeyName, SharedAccessKey, DeviceId or ModuleId)", n)
		}
		if seen[canon] {
			return ConnectionString{}, csError("%s appears more than once", canon)
		}
		seen[canon] = true
		value = strings.TrimSpace(value)
		if value == "" {
			return ConnectionString{}, csError("%s is empty", canon)
		}
		switch canon {
		case "HostName":
			c.HostName = value
		case "SharedAccessKeyName":
			c.SharedAccessKeyName = value
		case "SharedAccessKey":
			c.SharedAccessKey = value
		case "DeviceId":
			c.DeviceID = value
		case "ModuleId":
			c.ModuleID = value
		}
	}
	switch {
	case c.HostName == "":
		return ConnectionString{}, csError("HostName is missing")
	case strings.ContainsAny(c.HostName, "/ ") || strings.Contains(c.HostName, "://"):
		return ConnectionString{}, csError("HostName must be a host name (optionally host:port), not a URL")
	case c.SharedAccessKey == "":
		return ConnectionString{}, csError("SharedAccessKey is missing")
	case c.SharedAccessKeyName == "" && c.DeviceID == "":
		return ConnectionString{}, csError("needs SharedAccessKeyName (a service connection string) or DeviceId (a device connection string)")
	case c.ModuleID != "" && c.DeviceID == "":
		return ConnectionString{}, csError("ModuleId needs DeviceId")
	}
	if k, err := base64.StdEncoding.DecodeString(c.SharedAccessKey); err != nil || len(k) == 0 {
		return ConnectionString{}, csError("SharedAccessKey is not valid base64")
	}
	return c, nil
}

// String is the full connection string, key included. Use it only to print a secret on purpose
// (e.g. `iotplan dev` showing its own connection string); use Redacted everywhere else.
func (c ConnectionString) String() string { return c.format(c.SharedAccessKey) }

// Redacted is the connection string with the key replaced by "<redacted>".
func (c ConnectionString) Redacted() string {
	if c.SharedAccessKey == "" {
		return c.format("")
	}
	return c.format("<redacted>")
}

func (c ConnectionString) format(key string) string {
	var b strings.Builder
	add := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(k + "=" + v)
	}
	add("HostName", c.HostName)
	add("DeviceId", c.DeviceID)
	add("ModuleId", c.ModuleID)
	add("SharedAccessKeyName", c.SharedAccessKeyName)
	add("SharedAccessKey", key)
	return b.String()
}

// Resource is the resource URI a token made from this connection string is scoped to: the hub
// host for a service connection string, host/devices/{id}[/modules/{mid}] for a device one
// (what Node, C# and the docs use).
func (c ConnectionString) Resource() string {
	switch {
	case c.DeviceID == "":
		return c.HostName
	case c.ModuleID == "":
		return c.HostName + "/devices/" + c.DeviceID
	default:
		return c.HostName + "/devices/" + c.DeviceID + "/modules/" + c.ModuleID
	}
}

// Token signs a token for Resource() that expires at expiry.
func (c ConnectionString) Token(expiry time.Time) (string, error) {
	return NewToken(c.Resource(), c.SharedAccessKey, c.SharedAccessKeyName, expiry)
}

// TokenPrefix starts every SAS token in an Authorization header or MQTT password.
const TokenPrefix = "SharedAccessSignature "

// NewToken makes "SharedAccessSignature sr=…&sig=…&se=…[&skn=…]" the way the Go SDK does:
// sr = url.QueryEscape(resource); sig = base64(HMAC-SHA256(base64decode(key), sr + "\n" + se));
// skn is omitted when policy is "" (device-key tokens).
func NewToken(resource, base64Key, policy string, expiry time.Time) (string, error) {
	key, err := base64.StdEncoding.DecodeString(base64Key)
	if err != nil || len(key) == 0 {
		return "", ErrKey
	}
	sr := url.QueryEscape(resource)
	se := strconv.FormatInt(expiry.Unix(), 10)
	s := TokenPrefix + "sr=" + sr + "&sig=" + url.QueryEscape(sign(key, sr, se)) + "&se=" + se
	if policy != "" {
		s += "&skn=" + url.QueryEscape(policy)
	}
	return s, nil
}

func sign(key []byte, rawSR, se string) string {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(rawSR + "\n" + se))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// Token is a parsed SAS token.
type Token struct {
	Resource    string    // sr, URL-decoded: "host" or "host/devices/id"
	RawResource string    // sr exactly as received: the string that was signed
	Signature   string    // sig, URL-decoded base64
	KeyName     string    // skn; "" for device-key tokens
	Expiry      time.Time // se
	se          string    // se exactly as received: part of the signed string
}

// ParseToken parses an Authorization header value (or MQTT password). Fields may come in any
// order (SDKs differ: sr,sig,se,skn / sr,sig,skn,se / sig,se,skn,sr).
func ParseToken(header string) (Token, error) {
	var t Token
	s := strings.TrimSpace(header)
	if len(s) < len(TokenPrefix) || !strings.EqualFold(s[:len(TokenPrefix)], TokenPrefix) {
		return t, &failure{ErrMalformed, "not a SharedAccessSignature token"}
	}
	s = strings.TrimSpace(s[len(TokenPrefix):])
	seen := map[string]bool{}
	for part := range strings.SplitSeq(s, "&") {
		if part == "" {
			continue
		}
		name, raw, ok := strings.Cut(part, "=")
		if !ok {
			return Token{}, tokenError("a field has no value")
		}
		name = strings.ToLower(name)
		if seen[name] {
			return Token{}, tokenError("%s appears more than once", name)
		}
		seen[name] = true
		// sig: PathUnescape, so a signature sent without escaping keeps its '+' characters.
		// sr: QueryUnescape, because the Go SDK and Python's quote_plus write a space as '+'.
		unescape := url.PathUnescape
		if name == "sr" {
			unescape = url.QueryUnescape
		}
		val, err := unescape(raw)
		if err != nil {
			return Token{}, tokenError("%s is not URL-encoded correctly", name)
		}
		switch name {
		case "sr":
			t.RawResource, t.Resource = raw, val
		case "sig":
			t.Signature = val
		case "skn":
			t.KeyName = val
		case "se":
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil {
				return Token{}, tokenError("se is not a number of seconds")
			}
			t.Expiry, t.se = time.Unix(n, 0).UTC(), val
		default:
			// The hub ignores fields it does not know; so do we (names only, never values).
		}
	}
	for _, f := range []string{"sr", "sig", "se"} {
		if !seen[f] {
			return Token{}, tokenError("%s is missing", f)
		}
	}
	return t, nil
}

// Verify is the one check of a token's signature and expiry, for the REST API and the MQTT
// endpoint alike. keys are the keys of the identity the token names (a policy's or a device's
// primary and secondary key; "" for a key that is not set). The HMAC is computed over the sr
// value exactly as received (all SDKs sign the encoded form they send). The signature is
// checked before the expiry, so a forged token is reported as forged even when it has also
// expired; a genuine one past its se time is ErrExpired, whichever key signed it.
//
// It returns nil, ErrSignature, ErrExpired or ErrNoKey.
func (t Token) Verify(now time.Time, keys ...string) error {
	se := t.se
	if se == "" {
		se = strconv.FormatInt(t.Expiry.Unix(), 10)
	}
	err := ErrNoKey
	for _, k := range keys {
		key, derr := base64.StdEncoding.DecodeString(k)
		if derr != nil || len(key) == 0 {
			continue
		}
		want := sign(key, t.RawResource, se)
		if !hmac.Equal([]byte(want), []byte(t.Signature)) {
			err = ErrSignature
			continue
		}
		if !now.Before(t.Expiry) {
			return ErrExpired
		}
		return nil
	}
	return err
}

// ScopeCovers reports whether a token for tokenResource may access requested. Both are
// "host[/segment...]" (an https:// prefix and trailing slashes are ignored). The token's resource
// must be a prefix of the requested one segment by segment: "h/a/b" covers "h/a/b/c" but not
// "h/a/bc". The host is compared case-insensitively (DNS); path segments case-sensitively, because
// device ids are case-sensitive.
func ScopeCovers(tokenResource, requested string) bool {
	ts := scopeSegments(tokenResource)
	rs := scopeSegments(requested)
	if len(ts) == 0 || len(ts) > len(rs) {
		return false
	}
	if !strings.EqualFold(ts[0], rs[0]) {
		return false
	}
	for i := 1; i < len(ts); i++ {
		if ts[i] != rs[i] {
			return false
		}
	}
	return true
}

func scopeSegments(s string) []string {
	s = strings.TrimSpace(s)
	if i := strings.Index(s, "://"); i >= 0 {
		s = s[i+3:]
	}
	s = strings.Trim(s, "/")
	if s == "" {
		return nil
	}
	return strings.Split(s, "/")
}
