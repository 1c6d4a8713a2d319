package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// QueryView says how 'iotplan query' lays out its rows for people.
type QueryView int

const (
	// QueryColumns: one column per top-level key, the union over the rows in the order the
	// keys first appear (for projections and aggregates, the SELECT list's order).
	QueryColumns QueryView = iota
	// QueryDeviceTwins: SELECT * FROM devices. A twin has some twenty top-level keys, most of
	// them registry metadata, so the table shows the ones people look for: id, status,
	// connection state and compact tags, desired and reported properties (without $metadata
	// and $version). -json has the whole twins.
	QueryDeviceTwins
	// QueryModuleTwins: SELECT * FROM devices.modules, the same with the module id.
	QueryModuleTwins
)

// maxCell bounds a cell of a query table; longer values end in … (-json has them whole).
const maxCell = 60

// queryRow is one row: its top-level keys in the hub's order and their raw values.
type queryRow struct {
	keys   []string
	values map[string]json.RawMessage
}

// nonObjectKey is the column of rows that are not JSON objects (the hub sends objects for
// every documented query; this keeps any other value visible rather than dropped).
const nonObjectKey = "(value)"

// parseQueryRow reads a row's top-level keys in order, which decoding into a map would lose.
func parseQueryRow(raw json.RawMessage) queryRow {
	row := queryRow{values: map[string]json.RawMessage{}}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return queryRow{keys: []string{nonObjectKey}, values: map[string]json.RawMessage{nonObjectKey: raw}}
	}
	for dec.More() {
		t, err := dec.Token()
		key, ok := t.(string)
		var v json.RawMessage
		if err != nil || !ok || dec.Decode(&v) != nil {
			return queryRow{keys: []string{nonObjectKey}, values: map[string]json.RawMessage{nonObjectKey: raw}}
		}
		if _, dup := row.values[key]; !dup {
			row.keys = append(row.keys, key)
		}
		row.values[key] = v
	}
	return row
}

// QueryTable writes the rows of 'iotplan query' as an aligned table with a header line.
// Values are shown on one line: strings as they are (quoted when they hold characters a
// terminal would act on), other values as compact JSON, a key a row lacks as an empty cell.
// With QueryColumns, the columns named in order (the SELECT list's keys, matched without
// regard to case) come first, then any other key in the order it first appears: the hub
// does not promise to keep the SELECT list's order in its rows.
func QueryTable(w io.Writer, rows []json.RawMessage, view QueryView, order []string, opts Options) error {
	out := &writer{w: w}
	if len(rows) == 0 {
		out.printf("The query returned no rows.\n")
		return out.err
	}
	parsed := make([]queryRow, len(rows))
	for i, r := range rows {
		parsed[i] = parseQueryRow(r)
	}
	var cut cutter
	header, cells, numeric := queryColumns(parsed, view, order, &cut)
	table := append([][]string{header}, cells...)
	widths := columnWidths(table)
	st := styler{opts.Color}
	for i, r := range table {
		var line strings.Builder
		for c, cell := range r {
			text := pad(cell, widths[c], numeric[c])
			if i == 0 {
				text = st.style(bold, text)
			}
			line.WriteString(text)
			if c < len(r)-1 {
				line.WriteString("  ")
			}
		}
		out.printf("%s\n", strings.TrimRight(line.String(), " "))
	}
	if cut.cut {
		out.printf("\nValues longer than %d characters end in …; -json writes them whole.\n", maxCell)
	}
	return out.err
}

// queryColumns returns the header, the cells and which columns hold only numbers (shown
// right-aligned).
func queryColumns(rows []queryRow, view QueryView, order []string, cut *cutter) (header []string, cells [][]string, numeric []bool) {
	if view == QueryDeviceTwins || view == QueryModuleTwins {
		return twinColumns(rows, view, cut)
	}
	keys := columnKeys(rows, order)
	header = make([]string, len(keys))
	for c, k := range keys {
		header[c] = printable(k) // keys come from the hub's rows too
	}
	numeric = make([]bool, len(keys))
	for c, k := range keys {
		numeric[c] = true
		for _, r := range rows {
			if v, ok := r.values[k]; ok && !isJSONNumber(v) {
				numeric[c] = false
			}
		}
	}
	for _, r := range rows {
		line := make([]string, len(keys))
		for c, k := range keys {
			if v, ok := r.values[k]; ok {
				line[c] = cut.cell(v)
			}
		}
		cells = append(cells, line)
	}
	return header, cells, numeric
}

// columnKeys is the union of the rows' keys: those order names first, in its order, then the
// others as they first appear.
func columnKeys(rows []queryRow, order []string) []string {
	var first, rest []string
	seen := map[string]bool{}
	rank := func(k string) int {
		for i, o := range order {
			if strings.EqualFold(o, k) {
				return i
			}
		}
		return -1
	}
	for _, r := range rows {
		for _, k := range r.keys {
			if seen[k] {
				continue
			}
			seen[k] = true
			if rank(k) >= 0 {
				first = append(first, k)
			} else {
				rest = append(rest, k)
			}
		}
	}
	slices.SortStableFunc(first, func(a, b string) int { return rank(a) - rank(b) })
	return append(first, rest...)
}

// twinColumns lays out whole twins: DEVICE ID [MODULE ID] STATUS CONNECTION TAGS DESIRED
// REPORTED.
func twinColumns(rows []queryRow, view QueryView, cut *cutter) (header []string, cells [][]string, numeric []bool) {
	header = []string{"DEVICE ID", "STATUS", "CONNECTION", "TAGS", "DESIRED", "REPORTED"}
	if view == QueryModuleTwins {
		header = append([]string{"DEVICE ID", "MODULE ID"}, header[1:]...)
	}
	for _, r := range rows {
		desired, reported := twinProperties(r.values["properties"])
		field := func(key string) string {
			if v, ok := r.values[key]; ok {
				return cut.cell(v)
			}
			return ""
		}
		line := []string{field("deviceId")}
		if view == QueryModuleTwins {
			line = append(line, field("moduleId"))
		}
		line = append(line, field("status"), field("connectionState"), field("tags"), cut.cell(desired), cut.cell(reported))
		cells = append(cells, line)
	}
	return header, cells, make([]bool, len(header))
}

// twinProperties returns a twin's desired and reported properties without the hub's
// $metadata and $version, which would fill the cell before any property shows (nil when the
// twin has none).
func twinProperties(raw json.RawMessage) (desired, reported json.RawMessage) {
	var props map[string]map[string]json.RawMessage
	if len(raw) == 0 || json.Unmarshal(raw, &props) != nil {
		return nil, nil
	}
	strip := func(m map[string]json.RawMessage) json.RawMessage {
		if m == nil {
			return nil
		}
		delete(m, "$metadata")
		delete(m, "$version")
		b, _ := json.Marshal(m) // keys sorted: the same twin always reads the same
		return b
	}
	return strip(props["desired"]), strip(props["reported"])
}

func isJSONNumber(v json.RawMessage) bool {
	s := bytes.TrimSpace(v)
	return len(s) > 0 && (s[0] == '-' || (s[0] >= '0' && s[0] <= '9'))
}

// cutter makes table cells and remembers whether it shortened one.
type cutter struct{ cut bool }

// cell is a value as one table cell: a string as it is, unless it is empty or holds a
// character a terminal could act on (escapes from a device's reported properties must not
// reach the terminal), then JSON-quoted; anything else as compact JSON; nothing (a key the
// row lacks) as an empty cell. Cells longer than maxCell are cut.
func (c *cutter) cell(v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(v, &s) == nil {
		if s != "" && allPrintable(s) {
			return c.shorten(s)
		}
		b, _ := json.Marshal(s)
		return c.shorten(printable(string(b)))
	}
	var b bytes.Buffer
	if json.Compact(&b, v) != nil {
		return c.shorten(printable(string(v)))
	}
	return c.shorten(printable(b.String()))
}

func allPrintable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// printable escapes what is not printable (C0 and C1 controls, DEL, bidirectional overrides)
// as \uXXXX. It is applied to JSON text, where that escape is the value's own spelling;
// outside JSON strings compact JSON holds no such character.
func printable(s string) string {
	if allPrintable(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case unicode.IsPrint(r):
			b.WriteRune(r)
		case r > 0xFFFF:
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+((r-0x10000)>>10), 0xDC00+((r-0x10000)&0x3FF))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}

func (c *cutter) shorten(s string) string {
	if utf8.RuneCountInString(s) <= maxCell {
		return s
	}
	c.cut = true
	return string([]rune(s)[:maxCell-1]) + "…"
}

// QueryJSON writes the rows of 'iotplan query -json' as one JSON array, a row per line as the
// hub sent it (compacted), as the pages arrive: a SELECT * over a million twins streams in
// constant memory. An array that was never ended (the command failed after its first rows)
// is not valid JSON, so a script cannot take part of a result for all of it.
type QueryJSON struct {
	out  *writer
	rows int
}

// NewQueryJSON starts the array on w.
func NewQueryJSON(w io.Writer) *QueryJSON { return &QueryJSON{out: &writer{w: w}} }

// Row writes one row.
func (q *QueryJSON) Row(raw json.RawMessage) error {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return fmt.Errorf("the hub sent a row that is not JSON: %w", err)
	}
	sep := ",\n"
	if q.rows == 0 {
		sep = "[\n"
	}
	q.rows++
	q.out.printf("%s  %s", sep, b.String())
	return q.out.err
}

// End ends the array ("[]" when there were no rows).
func (q *QueryJSON) End() error {
	if q.rows == 0 {
		q.out.printf("[]\n")
	} else {
		q.out.printf("\n]\n")
	}
	return q.out.err
}

// QuerySummary is the line 'iotplan query' ends with on the error stream, so that the data
// on the output stream stays only data: the rows read, whether -top stopped before the hub's
// last row, and the hub calls the query took (pages of at most 100 rows, each one call).
func QuerySummary(w io.Writer, rows int, more bool, top int, calls map[string]int) error {
	out := &writer{w: w}
	read := "Read " + plural(rows, "row", "rows") + "."
	if more {
		read = fmt.Sprintf("Read the first %s (-top %d); the hub has more.", plural(rows, "row", "rows"), top)
	}
	if line := callsLine("The query", calls); line != "" {
		read += " " + line
	}
	out.printf("%s\n", read)
	return out.err
}
