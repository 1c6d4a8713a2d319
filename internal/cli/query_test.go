package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/iotplan/iotplan/internal/hub/hubtest"
	"github.com/iotplan/iotplan/internal/hubapi"
)

// decodeRows decodes the JSON array of 'query -json'.
func decodeRows(t *testing.T, out string) []map[string]any {
	t.Helper()
	var rows []map[string]any
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatalf("query -json output is not one JSON array of objects: %v\n%s", err, out)
	}
	return rows
}

// TestQuery runs 'iotplan query' against the strict local hub with the default fleet (301
// devices); the audit fails the test for any query text the hub rejects.
func TestQuery(t *testing.T) {
	h, audit := auditedHub(t, "")
	dir := registerHub(t, h)
	c := testClient(t, h)
	devices := h.Sim().DeviceCount()

	t.Run("finds myDeviceId", func(t *testing.T) {
		r := iotplan(t, "query", "-dev", "-data", dir, "SELECT * FROM devices WHERE deviceId = 'myDeviceId'")
		if r.code != 0 {
			t.Fatalf("exit %d\nstderr:\n%s", r.code, r.err)
		}
		lines := strings.Split(strings.TrimSpace(r.out), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "DEVICE ID") || !strings.HasPrefix(lines[1], "myDeviceId  enabled") {
			t.Errorf("twin table:\n%s\nwant a header and one myDeviceId row", r.out)
		}
		if !strings.Contains(r.err, "Read 1 row. The query used 1 hub call (query: 1).") {
			t.Errorf("stderr lacks the row and hub call counts:\n%s", r.err)
		}
	})

	t.Run("GROUP BY with COUNT", func(t *testing.T) {
		text := "SELECT COUNT() AS n, tags.building AS building FROM devices WHERE tags.kind = 'door-controller' GROUP BY tags.building"
		want, err := c.Query(context.Background(), text)
		if err != nil {
			t.Fatal(err)
		}
		r := iotplan(t, "query", "-dev", "-data", dir, "-json", text)
		got := decodeRows(t, r.out)
		counts, total := map[any]any{}, 0.0
		for _, g := range got {
			counts[g["building"]] = g["n"]
			total += g["n"].(float64)
		}
		if r.code != 0 || len(got) != len(want) || len(got) < 2 || total != float64(devices-1) {
			t.Errorf("exit %d, %d groups %v totalling %v; want the hub's %d groups of %d door controllers", r.code, len(got), counts, total, len(want), devices-1)
		}
		for _, g := range want {
			if counts[g["building"]] != g["n"] {
				t.Errorf("building %v: %v devices, the hub counts %v", g["building"], counts[g["building"]], g["n"])
			}
		}
		// The table keeps the SELECT list's order (n before building), whatever the hub's.
		r = iotplan(t, "query", "-dev", "-data", dir, text)
		if fields := strings.Fields(strings.SplitN(r.out, "\n", 2)[0]); r.code != 0 || len(fields) != 2 || fields[0] != "n" || fields[1] != "building" {
			t.Errorf("table header %q, want n then building:\n%s", fields, r.out)
		}
	})

	t.Run("a bad query is located and never sent", func(t *testing.T) {
		sent := len(audit.Events())
		r := iotplan(t, "query", "-dev", "-data", dir, "SELECT deviceId\nFROM devices\nWHERE tags.building == '43'")
		if r.code != exitError || r.out != "" {
			t.Errorf("exit %d, stdout %q; want 1 and nothing", r.code, r.out)
		}
		want := "  on line 3, column 22 of the query:\n" +
			"    3: WHERE tags.building == '43'\n" +
			"                            ^\n"
		if !strings.Contains(r.err, want) || !strings.Contains(r.err, "Error: Invalid query") {
			t.Errorf("stderr:\n%s\nwant it to contain:\n%s", r.err, want)
		}
		if n := len(audit.Events()) - sent; n != 0 || strings.Contains(r.err, "hub call") {
			t.Errorf("the hub received %d queries for a query that does not parse; stderr:\n%s", n, r.err)
		}
		// An extension the hub does not document says how to send it anyway.
		r = iotplan(t, "query", "-dev", "-data", dir, "SELECT * FROM devices WHERE ENDSWITH(deviceId, '7')")
		if r.code != exitError || !strings.Contains(r.err, "column 29") || !strings.Contains(r.err, "-query-dialect extended") {
			t.Errorf("ENDSWITH: exit %d, stderr:\n%s", r.code, r.err)
		}
		if n := len(audit.Events()) - sent; n != 0 {
			t.Errorf("the hub received %d queries", n)
		}
	})

	t.Run("pages through every row", func(t *testing.T) {
		r := iotplan(t, "query", "-json", "-dev", "-data", dir, "SELECT deviceId FROM devices")
		rows := decodeRows(t, r.out)
		ids := map[any]bool{}
		for _, row := range rows {
			ids[row["deviceId"]] = true
		}
		pages := (devices + hubapi.MaxPageSize - 1) / hubapi.MaxPageSize
		if r.code != 0 || len(rows) != devices || len(ids) != devices || !ids["myDeviceId"] {
			t.Errorf("exit %d, %d rows (%d distinct ids); want %d devices, myDeviceId among them", r.code, len(rows), len(ids), devices)
		}
		if want := fmt.Sprintf("Read %d rows. The query used %d hub calls (query: %d).", devices, pages, pages); pages < 2 || !strings.Contains(r.err, want) {
			t.Errorf("stderr:\n%s\nwant %q (more than one page)", r.err, want)
		}
	})

	t.Run("-top stops paging", func(t *testing.T) {
		for _, tc := range []struct{ top, calls int }{{150, 2}, {100, 1}, {5, 1}} {
			r := iotplan(t, "query", "-json", "-top", fmt.Sprint(tc.top), "-dev", "-data", dir, "SELECT deviceId FROM devices")
			rows := decodeRows(t, r.out)
			want := fmt.Sprintf("Read the first %d rows (-top %d); the hub has more. The query used %s (query: %d).",
				tc.top, tc.top, map[bool]string{true: "1 hub call", false: fmt.Sprintf("%d hub calls", tc.calls)}[tc.calls == 1], tc.calls)
			if r.code != 0 || len(rows) != tc.top || !strings.Contains(r.err, want) {
				t.Errorf("-top %d: exit %d, %d rows, stderr:\n%s\nwant %q", tc.top, r.code, len(rows), r.err, want)
			}
		}
		// -top at exactly the fleet's size, or beyond it, reads every row and no more.
		pages := (devices + hubapi.MaxPageSize - 1) / hubapi.MaxPageSize
		for _, top := range []int{devices, devices + 1} {
			r := iotplan(t, "query", "-json", "-top", fmt.Sprint(top), "-dev", "-data", dir, "SELECT deviceId FROM devices")
			want := fmt.Sprintf("Read %d rows. The query used %d hub calls (query: %d).", devices, pages, pages)
			if rows := decodeRows(t, r.out); r.code != 0 || len(rows) != devices || !strings.Contains(r.err, want) {
				t.Errorf("-top %d: exit %d, %d rows, stderr:\n%s\nwant %q", top, r.code, len(rows), r.err, want)
			}
		}
	})

	t.Run("no rows", func(t *testing.T) {
		r := iotplan(t, "query", "-json", "-dev", "-data", dir, "SELECT * FROM devices WHERE deviceId = 'nobody'")
		if r.code != 0 || len(decodeRows(t, r.out)) != 0 || strings.TrimSpace(r.out) != "[]" {
			t.Errorf("exit %d, output %q; want []", r.code, r.out)
		}
		r = iotplan(t, "query", "-dev", "-data", dir, "SELECT * FROM devices WHERE deviceId = 'nobody'")
		if r.code != 0 || r.out != "The query returned no rows.\n" {
			t.Errorf("exit %d, output %q", r.code, r.out)
		}
	})

	t.Run("usage errors", func(t *testing.T) {
		for _, args := range [][]string{{"query"}, {"query", "-top", "-1", "SELECT * FROM devices"}, {"query", "  "}, {"query", "-query-dialect", "sql", "SELECT * FROM devices"}} {
			if r := iotplan(t, args...); r.code != exitError || !strings.Contains(r.err, "--help") {
				t.Errorf("%q: exit %d, stderr %q; want 1 and a usage hint", args, r.code, r.err)
			}
		}
	})
}

// TestQueryHubErrorIsOneLineWithoutKey sends, with -query-dialect extended, a query the strict
// hub refuses (so its hub is not audited): the hub's answer is one line and holds no key.
func TestQueryHubErrorIsOneLineWithoutKey(t *testing.T) {
	h, _ := hubtest.Start(t, "")
	dir := registerHub(t, h)
	r := iotplan(t, "query", "-query-dialect", "extended", "-dev", "-data", dir, "SELECT * FROM devices WHERE ENDSWITH(deviceId, '7')")
	if r.code != exitError || r.out != "" {
		t.Errorf("exit %d, stdout %q; want 1 and nothing", r.code, r.out)
	}
	if lines := strings.Split(strings.TrimSpace(r.err), "\n"); len(lines) != 1 || !strings.HasPrefix(lines[0], "Error: running the query on ") {
		t.Errorf("stderr is not one error line:\n%s", r.err)
	}
	_, key, _ := strings.Cut(h.ServiceConnectionString(), "SharedAccessKey=")
	if key == "" || strings.Contains(r.err, key) {
		t.Errorf("stderr holds the key (or the test found none):\n%s", r.err)
	}
}
