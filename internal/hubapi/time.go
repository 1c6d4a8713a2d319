package hubapi

import (
	"encoding/json"
	"fmt"
	"time"
)

// looseTime reads the hub's timestamps. Most carry a zone ("…Z"), but the documented
// devices.jobs rows show startTimeUtc and endTimeUtc without one
// ("2016-09-29T18:18:52.7418462"); those fields are UTC by name, so a missing zone means UTC.
// Reading them strictly would make a client fail on the rows it needs to report failures.
type looseTime struct{ t *time.Time }

// zonelessLayout is RFC 3339 without the zone, with up to 9 fractional digits.
const zonelessLayout = "2006-01-02T15:04:05.999999999"

func (l *looseTime) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	for _, layout := range []string{time.RFC3339Nano, zonelessLayout} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			*l.t = t
			return nil
		}
	}
	return fmt.Errorf("hubapi: %q is not a timestamp", s)
}

// UnmarshalJSON reads a devices.jobs row, accepting zoneless UTC timestamps (see looseTime).
func (d *DeviceJob) UnmarshalJSON(b []byte) error {
	type row DeviceJob // the same fields without this method
	var start, end, created, updated time.Time
	aux := struct {
		*row
		StartTimeUTC           *looseTime `json:"startTimeUtc"`
		EndTimeUTC             *looseTime `json:"endTimeUtc"`
		CreatedDateTimeUTC     *looseTime `json:"createdDateTimeUtc"`
		LastUpdatedDateTimeUTC *looseTime `json:"lastUpdatedDateTimeUtc"`
	}{
		row:                    (*row)(d),
		StartTimeUTC:           &looseTime{&start},
		EndTimeUTC:             &looseTime{&end},
		CreatedDateTimeUTC:     &looseTime{&created},
		LastUpdatedDateTimeUTC: &looseTime{&updated},
	}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	set := func(dst **time.Time, t time.Time) {
		if !t.IsZero() {
			*dst = &t
		}
	}
	set(&d.StartTimeUTC, start)
	set(&d.EndTimeUTC, end)
	set(&d.CreatedDateTimeUTC, created)
	set(&d.LastUpdatedDateTimeUTC, updated)
	return nil
}
