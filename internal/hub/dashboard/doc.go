// Package dashboard is the web dashboard of the local IoT Hub (`iotplan dev`): a few pages of
// plain HTML, CSS and JavaScript embedded in the binary (assets/, go:embed; no CDN, no npm
// build) and the JSON API they call, served under /ui/ on the hub's HTTPS port beside the
// service REST API. docs/dashboard.md is the user's guide, with screenshots.
//
// Pages: the fleet overview (device and connection counts, devices grouped by a tag or
// property as a bar chart, the throttling tier and recent 429s), devices (a query box in the
// hub's query language with paged results, and a twin with desired and reported properties
// side by side with their $metadata times), jobs (every job with a live progress bar,
// per-device outcomes failed first, cancel) and activity (recent direct-method calls and
// twin updates, live).
//
// Access. The dashboard shows twins, so it is not open to whoever reaches the port: the hub
// generates a random token at start (NewToken, 256 bits) and `iotplan dev` prints the URL
// carrying it (https://127.0.0.1:PORT/ui/?token=…), as Jupyter does
// (https://jupyter-server.readthedocs.io/en/latest/operators/security.html). Opening it
// exchanges the token for a cookie (HttpOnly, so page scripts cannot read it; Secure;
// SameSite=Strict, so no other site's page can send it, which is the CSRF defence; Path
// /ui/) and redirects to /ui/, which takes the token out of the address bar and history.
// Every other path under /ui/ — pages, assets and the API under /ui/api/ — answers 403
// without the cookie; the comparison is constant-time (crypto/subtle) over SHA-256 digests,
// so neither the token's bytes nor its length leak through timing. Requests that change
// something (POST) must also come from the dashboard's own origin (Origin or Sec-Fetch-Site).
// Pages are served with a Content-Security-Policy allowing only the dashboard's own scripts,
// styles and connections (https://developer.mozilla.org/docs/Web/HTTP/CSP), and the scripts
// put every value from the hub into the page as text (textContent), never as HTML. No page,
// API answer or log line carries a key or connection string: twins hold none, and device
// identities (which hold keys) are not served.
//
// Queries. The devices page, the overview's grouping and the job outcome lists run through
// the same code as REST POST /devices/query (httpapi.Server.Query: the hub's dialect,
// OnQuery audit, cursor cache and continuation tokens), so a query behaves as it does for a
// client, and its errors come back with their position. Queries the dashboard composes
// itself (GROUP BY a chosen property, a job's device rows) are built with internal/query's
// builder and printed by its formatter, never by pasting user text into query text. The
// dashboard's own requests are not throttled by the hub's tier: it is a local tool, not an
// Azure client, and its queries should not show up as the 429s it reports.
//
// Scale. Nothing here sends or holds the whole fleet: counts come from the registry and the
// session table (O(1)); groups come from one GROUP BY query (at most maxGroupPages pages of
// groups, the largest maxGroupBars shown), cached for groupsTTL and computed one at a time,
// so many open tabs cost one aggregation; query results and job outcomes come in pages of 100
// with continuation tokens. Live updates are server-sent events
// (https://html.spec.whatwg.org/multipage/server-sent-events.html): each open page gets one
// small summary a second (counts, throttle counters, the jobs that are running or ended
// recently, new activity up to maxEventsPerTick), at most maxStreams streams at once.
//
// Activity is a fixed ring of the last ActivityCapacity events (Activity), fed by the hub
// (internal/hub, activity.go) where direct methods are invoked (REST and jobs) and where
// twins change (desired: the registry's change hook; reported: the devices' patches over
// MQTT and from the simulated fleet). Recording takes a mutex for a copy into a fixed slot:
// it never allocates per event beyond the event's few strings, never blocks on a reader, and
// a slow page only misses events (it is told how many).
//
// Imports: internal/hub/httpapi (the query path), huberr, throttle, hubapi, query, tier,
// stdlib.
package dashboard
