package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/iotplan/iotplan/internal/query"
	"github.com/iotplan/iotplan/internal/render"
	"github.com/iotplan/iotplan/schema"
)

type queryOptions struct {
	config  configFlags
	hub     hubFlags
	json    bool
	top     int
	dialect query.Dialect
}

func newQueryCmd(s Streams) *cobra.Command {
	o := &queryOptions{}
	cmd := &cobra.Command{
		Use:   "query [-json] [-top N] [-query-dialect documented|extended] [-dev] 'SELECT ...' [PATH]",
		Short: "Run an IoT Hub query and show its rows",
		Long: `Runs an IoT Hub query (POST /devices/query, like 'az iot hub query') and shows
every row, following the hub's continuation tokens page by page (at most 100 rows
a page, each page one hub call); -top N stops after N rows.

The query is parsed first with the parser iotplan plans with, in IoT Hub's
documented query language (docs/query.md): a query it rejects is shown with a
caret under the offending column and no hub call is made. -query-dialect extended
also accepts the local hub's extensions (iotplan dev --query-dialect extended);
Azure may reject them. The text sent is the text given.

Output: a table, one column per top-level key of the rows (for projections and
aggregates, the SELECT list's order; values longer than 60 characters end in …).
SELECT * FROM devices shows DEVICE ID, STATUS, CONNECTION, TAGS, DESIRED and
REPORTED (compact JSON, without $metadata and $version); devices.modules adds
MODULE ID. -json writes one JSON array, one row per line exactly as the hub sent
it, streamed as the pages arrive. The rows read and the hub calls used are
written to the error stream.

The hub is chosen as for plan: -dev, the hub block of PATH (a .hcl file or a
directory of them, read only when given), or IOTHUB_CONNECTION_STRING.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error { return runQuery(cmd, s, o, args) },
	}
	fs := cmd.Flags()
	o.config.register(fs)
	hub := pflag.NewFlagSet("hub", pflag.ContinueOnError)
	o.hub.register(hub)
	hub.VisitAll(func(f *pflag.Flag) {
		if f.Name != "state" { // a query reads no state
			fs.AddFlag(f)
		}
	})
	fs.BoolVar(&o.json, "json", false, "write the rows as one JSON array, a row per line, as the hub sent them")
	fs.IntVar(&o.top, "top", 0, "read at most N rows (0 = every row)")
	fs.Var(dialectFlag{&o.dialect}, "query-dialect", "the query language to accept: documented (IoT Hub's) or extended (the local hub's extensions)")
	return cmd
}

// dialectFlag makes a query.Dialect (which has Set and String) a pflag.Value.
type dialectFlag struct{ d *query.Dialect }

func (f dialectFlag) String() string {
	if f.d == nil {
		return query.Documented.String()
	}
	return f.d.String()
}
func (f dialectFlag) Set(s string) error { return f.d.Set(s) }
func (dialectFlag) Type() string         { return "dialect" }

func runQuery(cmd *cobra.Command, s Streams, o *queryOptions, args []string) error {
	if o.top < 0 {
		return flagErrorf("-top %d: expected 0 (every row) or more", o.top)
	}
	text := args[0]
	q, err := parseQuery(s, text, o.dialect)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var cfg *schema.Config
	if len(args) > 1 {
		if cfg, err = loadConfig(s, args[1:], &o.config); err != nil {
			return err
		}
	}
	hs, err := openHub(ctx, o.hub, cfg, s.Err)
	if err != nil {
		return err
	}
	defer hs.Close()
	sink := newQuerySink(s, o, q)
	more, err := hs.client.EachQueryRow(ctx, text, o.top, sink.row)
	if err != nil {
		return fmt.Errorf("running the query on %s: %w", hs.name, err)
	}
	if err := sink.end(); err != nil {
		return err
	}
	return render.QuerySummary(s.Err, sink.rows, more, o.top, hs.client.Calls())
}

// parseQuery parses the user's query in dialect d; a rejected query is shown with its line
// and a caret under the column before any hub is contacted.
func parseQuery(s Streams, text string, d query.Dialect) (*query.Query, error) {
	if strings.TrimSpace(text) == "" {
		return nil, flagErrorf("the query is empty: give a statement such as 'SELECT * FROM devices'")
	}
	q, err := query.ParseDialect(text, d)
	if err == nil {
		return q, nil
	}
	var qe *query.Error
	if !errors.As(err, &qe) {
		return nil, err
	}
	writeQueryError(s, text, qe, d)
	return nil, &silentError{exitError}
}

// writeQueryError writes a located query error as configuration diagnostics look: the
// summary, the line of the query with a caret under the column, then the message.
func writeQueryError(s Streams, text string, qe *query.Error, d query.Dialect) {
	fmt.Fprintf(s.Err, "Error: Invalid query\n\n  on line %d, column %d of the query:\n", qe.Pos.Line, qe.Pos.Col)
	lines := strings.Split(text, "\n")
	if qe.Pos.Line >= 1 && qe.Pos.Line <= len(lines) {
		line := strings.TrimRight(lines[qe.Pos.Line-1], "\r")
		fmt.Fprintf(s.Err, "%5d: %s\n       %s^\n", qe.Pos.Line, line, caretPad(line, qe.Pos.Col))
	}
	msg := qe.Msg
	if errors.Is(qe, query.ErrUndocumented) && d == query.Documented {
		msg += " (iotplan query -query-dialect extended sends it; Azure may reject it)"
	}
	fmt.Fprintf(s.Err, "\n%s\n", msg)
}

// caretPad is the white space before a caret under rune column col of line: tabs are kept so
// that the caret lines up under them too.
func caretPad(line string, col int) string {
	var b strings.Builder
	n := 1
	for _, r := range line {
		if n >= col {
			break
		}
		if r == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
		n++
	}
	for ; n < col; n++ { // a position past the end of the line (the end of the query)
		b.WriteByte(' ')
	}
	return b.String()
}

// querySink receives the rows: streamed as JSON with -json, else kept for the table, whose
// columns need every row.
type querySink struct {
	s     Streams
	view  render.QueryView
	order []string
	json  *render.QueryJSON
	kept  []json.RawMessage
	rows  int
	color bool
}

func newQuerySink(s Streams, o *queryOptions, q *query.Query) *querySink {
	k := &querySink{s: s, view: queryView(q), order: selectKeys(q), color: colorOn(s.OutTTY, &o.config)}
	if o.json {
		k.json = render.NewQueryJSON(s.Out)
	}
	return k
}

func (k *querySink) row(raw json.RawMessage) error {
	k.rows++
	if k.json != nil {
		return k.json.Row(raw)
	}
	k.kept = append(k.kept, raw)
	return nil
}

func (k *querySink) end() error {
	if k.json != nil {
		return k.json.End()
	}
	return render.QueryTable(k.s.Out, k.kept, k.view, k.order, render.Options{Color: k.color})
}

// queryView picks the table layout: whole twins get the twin columns, everything else
// (projections, aggregates, devices.jobs rows) a column per key.
func queryView(q *query.Query) render.QueryView {
	if len(q.Select) > 0 {
		return render.QueryColumns
	}
	switch q.From {
	case query.Devices:
		return render.QueryDeviceTwins
	case query.Modules:
		return render.QueryModuleTwins
	}
	return render.QueryColumns
}

// selectKeys are the keys the SELECT list names, in its order, to order the table's columns:
// an alias, else a property's last segment. Unnamed aggregates get names from the hub ($1,
// as Cosmos DB names unnamed expressions) and take their place after the named ones.
func selectKeys(q *query.Query) []string {
	var keys []string
	for _, p := range q.Select {
		if p.Alias != "" {
			keys = append(keys, p.Alias)
		} else if ref, ok := p.Expr.(*query.RefExpr); ok && len(ref.Path) > 0 {
			keys = append(keys, ref.Path[len(ref.Path)-1])
		}
	}
	return keys
}
