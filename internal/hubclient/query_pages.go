package hubclient

import (
	"context"
	"encoding/json"
)

// EachQueryRow runs q (text the caller has parsed with internal/query, or built with it) and
// hands fn each row exactly as the hub sent it, page by page as the pages arrive, at most
// limit rows (limit <= 0: every row). It reads a page only when it still needs rows from it,
// and reports whether the hub had rows beyond limit (a further row in the last page read, or
// a continuation token). Only one page is held at a time, so 'iotplan query -json' streams a
// SELECT * over a million twins in constant memory; the raw rows keep the hub's key order and
// number text, which decoding into map[string]any (Query) would lose.
func (c *Client) EachQueryRow(ctx context.Context, q string, limit int, fn func(row json.RawMessage) error) (more bool, err error) {
	n := 0
	err = c.eachPage(ctx, q, func(rows []json.RawMessage, next bool) (bool, error) {
		for i, r := range rows {
			if limit > 0 && n == limit {
				more = true
				return false, nil
			}
			if err := fn(r); err != nil {
				return false, err
			}
			n++
			if limit > 0 && n == limit && i == len(rows)-1 {
				// The limit falls on the page's last row: the token alone says whether
				// more remain, without reading another page.
				more = next
				return false, nil
			}
		}
		return true, nil
	})
	return more, err
}
