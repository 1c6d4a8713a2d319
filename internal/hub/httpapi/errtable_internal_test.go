package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/amenzhinsky/iothub/iotservice"

	"github.com/iotplan/iotplan/internal/hub/huberr"
	"github.com/iotplan/iotplan/internal/hubapi"
	"github.com/iotplan/iotplan/internal/hubclient"
)

// Error table (hub-throttle): every huberr code the hub's packages emit, in the envelope they
// emit it in, written by the one error writer and read back the way real clients read it —
// amenzhinsky/iothub's iotservice, iotplan's hubclient, and the parsing algorithms of Azure's
// C# and Node SDKs (ExceptionHandlingHelper.cs, http.ts parseErrorBody). The set of codes is found by reading the hub's
// source, so a code used later is covered without editing this test.

// codeConsts reads huberr's Code constants (name → value) from its source.
func codeConsts(t *testing.T, huberrDir string) map[string]int {
	t.Helper()
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, filepath.Join(huberrDir, "huberr.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			id, ok := vs.Type.(*ast.Ident)
			if !ok || id.Name != "Code" || len(vs.Values) != len(vs.Names) {
				continue
			}
			for i, n := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok {
					v, _ := strconv.Atoi(lit.Value)
					out[n.Name] = v
				}
			}
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d Code constants in huberr.go", len(out))
	}
	return out
}

type emission struct {
	name   string
	code   huberr.Code
	format huberr.Format
	where  string
}

// emittedCodes finds every huberr.<Code> the hub's non-test sources under root use, with the
// envelope: codes passed to huberr.NewJSON (or set with Format: JSONMessage) are JSON-in-Message,
// the rest legacy.
func emittedCodes(t *testing.T, root string) []emission {
	t.Helper()
	consts := codeConsts(t, filepath.Join(root, "huberr"))
	seen := map[string]emission{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "huberr" {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return nil // a file mid-edit by someone else: its package's own build reports it
		}
		jsonArgs := map[ast.Expr]bool{}
		ast.Inspect(f, func(n ast.Node) bool {
			switch x := n.(type) {
			case *ast.CallExpr:
				if sel, ok := x.Fun.(*ast.SelectorExpr); ok && isPkg(sel.X, "huberr") && sel.Sel.Name == "NewJSON" && len(x.Args) > 0 {
					jsonArgs[x.Args[0]] = true
				}
			case *ast.CompositeLit:
				if sel, ok := x.Type.(*ast.SelectorExpr); ok && isPkg(sel.X, "huberr") && sel.Sel.Name == "Error" {
					var code ast.Expr
					isJSON := false
					for _, e := range x.Elts {
						kv, ok := e.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						switch k := kv.Key.(*ast.Ident); {
						case k != nil && k.Name == "Code":
							code = kv.Value
						case k != nil && k.Name == "Format":
							if s, ok := kv.Value.(*ast.SelectorExpr); ok && s.Sel.Name == "JSONMessage" {
								isJSON = true
							}
						}
					}
					if code != nil && isJSON {
						jsonArgs[code] = true
					}
				}
			}
			return true
		})
		ast.Inspect(f, func(n ast.Node) bool {
			sel, ok := n.(*ast.SelectorExpr)
			if !ok || !isPkg(sel.X, "huberr") {
				return true
			}
			v, ok := consts[sel.Sel.Name]
			if !ok {
				return true
			}
			format := huberr.Legacy
			if jsonArgs[sel] {
				format = huberr.JSONMessage
			}
			key := fmt.Sprintf("%s/%d", sel.Sel.Name, format)
			if _, dup := seen[key]; !dup {
				rel, _ := filepath.Rel(root, path)
				seen[key] = emission{name: sel.Sel.Name, code: huberr.Code(v), format: format, where: fmt.Sprintf("%s:%d", rel, fset.Position(sel.Pos()).Line)}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]emission, 0, len(seen))
	for _, e := range seen {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].code != out[j].code {
			return out[i].code < out[j].code
		}
		return out[i].format < out[j].format
	})
	return out
}

func isPkg(e ast.Expr, name string) bool {
	id, ok := e.(*ast.Ident)
	return ok && id.Name == name
}

// csharpParse is ExceptionHandlingHelper's reading (Azure/azure-iot-sdk-csharp
// common/src/service/ExceptionHandlingHelper.cs): Message as JSON with
// an errorCode, else "ErrorCode:<Name>;…"; the code is trusted only when its name equals the
// iothub-errorcode header.
func csharpParse(header string, body []byte, names map[int]string) (name string, trusted bool) {
	var env struct{ Message string }
	if json.Unmarshal(body, &env) != nil {
		return "", false
	}
	var d struct {
		ErrorCode int `json:"errorCode"`
	}
	if json.Unmarshal([]byte(env.Message), &d) == nil && d.ErrorCode != 0 {
		name = names[d.ErrorCode]
	} else if rest, ok := strings.CutPrefix(env.Message, "ErrorCode:"); ok {
		name, _, _ = strings.Cut(rest, ";")
	}
	return name, name != "" && name == header
}

// nodeParse is azure-iot-hub-node's parseErrorBody: JSON.parse(body).Message.split(';'),
// code = the part before ';' after "ErrorCode:" (legacy envelope only).
func nodeParse(body []byte) (code, message string, ok bool) {
	var env struct{ Message string }
	if json.Unmarshal(body, &env) != nil || env.Message == "" {
		return "", "", false
	}
	parts := strings.Split(env.Message, ";")
	if len(parts) < 2 {
		return "", "", false
	}
	_, code, found := strings.Cut(parts[0], ":")
	return code, parts[1], found
}

func TestErrorTableAsClientsReadIt(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	ems := emittedCodes(t, filepath.Dir(wd)) // internal/hub
	names := map[int]string{}
	for n, v := range codeConsts(t, filepath.Join(filepath.Dir(wd), "huberr")) {
		names[v] = n
	}
	byKey := map[string]emission{}
	for _, e := range ems {
		byKey[fmt.Sprintf("%d-%d", e.code, e.format)] = e
	}

	s := New(Options{HostName: "errors.local"})
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The last path segment names the emission: "<code>-<format>".
		e, ok := byKey[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]
		if !ok {
			http.NotFound(w, r)
			return
		}
		he := huberr.New(e.code, "Test message for %s; with a semicolon.", e.name)
		if e.format == huberr.JSONMessage {
			he = huberr.NewJSON(e.code, map[string]any{"timeout": "00:00:10"}, "Test message for %s.", e.name)
		}
		s.writeError(w, r, he)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "https://")
	cs := "HostName=" + host + ";SharedAccessKeyName=iothubowner;SharedAccessKey=" + "dGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdGtleQ=="
	amz, err := iotservice.NewFromConnectionString(cs, iotservice.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}
	hc, err := hubclient.New(cs, hubclient.WithHTTPClient(srv.Client()), hubclient.WithRetry(1, 0, 0))
	if err != nil {
		t.Fatal(err)
	}

	for _, e := range ems {
		id := fmt.Sprintf("%d-%d", e.code, e.format)
		t.Run(fmt.Sprintf("%s_%d_%s", e.name, int(e.code), map[huberr.Format]string{huberr.Legacy: "legacy", huberr.JSONMessage: "json"}[e.format]), func(t *testing.T) {
			wantStatus := int(e.code) / 1000
			res, err := srv.Client().Get(srv.URL + "/devices/" + id + "?api-version=" + hubapi.APIVersion)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != wantStatus {
				t.Errorf("status %d, want %d (emitted at %s)", res.StatusCode, wantStatus, e.where)
			}
			if got := res.Header.Get(hubapi.HeaderErrorCode); got != e.name {
				t.Errorf("iothub-errorcode %q, want %q (huberr's name table lacks it?)", got, e.name)
			}
			if ct := res.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			var env hubapi.ErrorBody
			if err := json.Unmarshal(body, &env); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			switch e.format {
			case huberr.Legacy:
				if !strings.HasPrefix(env.Message, "ErrorCode:"+e.name+";") || !strings.HasPrefix(env.ExceptionMessage, "Tracking ID:") {
					t.Errorf("legacy envelope %+v", env)
				}
				// Node: code from the part before the first ';', message the part after.
				code, msg, ok := nodeParse(body)
				if !ok || code != e.name || !strings.HasPrefix(msg, "Test message for "+e.name) {
					t.Errorf("Node reads code %q message %q from %s", code, msg, body)
				}
			case huberr.JSONMessage:
				var d hubapi.ErrorDetail
				if err := json.Unmarshal([]byte(env.Message), &d); err != nil || d.ErrorCode != int(e.code) || d.TrackingID == "" || d.TimestampUTC == "" || env.ExceptionMessage != "" {
					t.Errorf("JSON-in-Message envelope %+v (%v)", env, err)
				}
				if d.Info["timeout"] != "00:00:10" {
					t.Errorf("info %v", d.Info)
				}
			}
			if name, trusted := csharpParse(res.Header.Get(hubapi.HeaderErrorCode), body, names); !trusted || name != e.name {
				t.Errorf("C# reads %q (trusted %v)", name, trusted)
			}

			// amenzhinsky: 400 bodies decode into BadRequestError, everything else is a
			// RequestError with the status and the raw body.
			_, err = amz.GetDevice(context.Background(), id)
			var bre *iotservice.BadRequestError
			var re *iotservice.RequestError
			switch {
			case wantStatus == 400:
				errors.As(err, &bre)
				b, _ := json.Marshal(bre)
				if name, _ := csharpParse(e.name, b, names); bre == nil || name != e.name {
					t.Errorf("amenzhinsky: %T %v, want *BadRequestError with the Message", err, err)
				}
			case errors.As(err, &re):
				// The body is the hub's envelope (a new tracking id per request).
				if name, _ := csharpParse(e.name, re.Body, names); re.Code != wantStatus || name != e.name {
					t.Errorf("amenzhinsky: RequestError{%d, %s}", re.Code, re.Body)
				}
			default:
				t.Errorf("amenzhinsky: %T %v", err, err)
			}

			// iotplan's client: status, numeric code and name.
			_, err = hc.GetJob(context.Background(), id)
			var he *hubclient.Error
			if !errors.As(err, &he) || he.Status != wantStatus || he.Code != int(e.code) || he.Name != e.name {
				t.Errorf("hubclient: %#v", err)
			}
		})
	}
	var list []string
	for _, e := range ems {
		list = append(list, fmt.Sprintf("%d %s", int(e.code), e.name))
	}
	t.Logf("%d emissions: %s", len(ems), strings.Join(list, ", "))
	// The scan of the hub's source must have found the table; an empty or broken scan would
	// otherwise pass without checking anything.
	if len(ems) < 20 {
		t.Fatalf("only %d error emissions found in the hub's source; the scan is broken", len(ems))
	}
}
