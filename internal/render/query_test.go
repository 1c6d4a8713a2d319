package render

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func rawRows(rows ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(rows))
	for i, r := range rows {
		out[i] = json.RawMessage(r)
	}
	return out
}

func TestQueryTableColumns(t *testing.T) {
	var b bytes.Buffer
	rows := rawRows(`{"building":"41","n":100}`, `{"building":"43","n":7,"extra":true}`, `{"n":1}`)
	if err := QueryTable(&b, rows, QueryColumns, []string{"N", "building"}, Options{}); err != nil {
		t.Fatal(err)
	}
	// The SELECT list's order (matched without case), then other keys; numbers right-aligned;
	// a key a row lacks is an empty cell.
	want := "  n  building  extra\n" +
		"100  41\n" +
		"  7  43        true\n" +
		"  1\n"
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

func TestQueryTableTwinsAndUnsafeText(t *testing.T) {
	var b bytes.Buffer
	long := strings.Repeat("x", 80)
	rows := rawRows(`{"deviceId":"d1","status":"enabled","connectionState":"Connected","tags":{"site":"ams"},
		"properties":{"desired":{"floor":3,"$metadata":{"$lastUpdated":"2026"},"$version":4},
		"reported":{"note":"\u001b[31mred\u009b","long":"` + long + `","$version":2}}}`)
	if err := QueryTable(&b, rows, QueryDeviceTwins, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.ContainsAny(out, "\x1b\u009b") {
		t.Errorf("a device's escape sequence reached the output: %q", out)
	}
	for _, want := range []string{"DEVICE ID  STATUS   CONNECTION  TAGS            DESIRED      REPORTED", "d1         enabled  Connected   {\"site\":\"ams\"}  {\"floor\":3}  {\"long\":\"xxx",
		"…\n", "end in …; -json writes them whole."} {
		if !strings.Contains(out, want) {
			t.Errorf("twin table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "$metadata") || strings.Contains(out, "$version") {
		t.Errorf("twin table shows the hub's metadata:\n%s", out)
	}

	b.Reset()
	rows = rawRows(`{"deviceId":"d\u001b]0;title\u0007"}`, `{"deviceId":""}`)
	if err := QueryTable(&b, rows, QueryColumns, nil, Options{}); err != nil {
		t.Fatal(err)
	}
	if want := "deviceId\n\"d\\u001b]0;title\\u0007\"\n\"\"\n"; b.String() != want {
		t.Errorf("unsafe and empty strings:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestQueryJSON(t *testing.T) {
	var b bytes.Buffer
	q := NewQueryJSON(&b)
	for _, r := range rawRows(`{ "a" : 1 }`, `{"b":[1, 2]}`) {
		if err := q.Row(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.End(); err != nil {
		t.Fatal(err)
	}
	if want := "[\n  {\"a\":1},\n  {\"b\":[1,2]}\n]\n"; b.String() != want {
		t.Errorf("JSON:\n%s\nwant:\n%s", b.String(), want)
	}
	b.Reset()
	if err := NewQueryJSON(&b).End(); err != nil || b.String() != "[]\n" {
		t.Errorf("no rows: %q, %v", b.String(), err)
	}
}
