// Package registry is the local hub's identity registry and twin store: device identities with
// their SAS keys, and device twins (tags, desired and reported properties) with the hub's
// versioning rules (see https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins):
//
//   - properties.desired.$version / properties.reported.$version count the writes to each section;
//   - the twin "version" is desired.$version + reported.$version + the number of tag writes, which
//     reproduces the captured fixtures (1+2 = 3) [inferred];
//   - "etag" is base64 of an 8-byte big-endian counter that starts at 1 and moves on every
//     service-side write (tags or desired), not on reported writes (as in the fixtures);
//   - the device identity's etag ("deviceEtag" in twins) is base64 of a decimal counter;
//   - $metadata mirrors every object and leaf of desired/reported with $lastUpdated (and, in
//     desired, $lastUpdatedVersion); every node on the path of a patched key is touched;
//   - PATCH is a JSON merge patch (RFC 7386: null deletes, objects merge recursively, arrays and
//     scalars replace); PUT replaces tags and desired wholesale (an absent section becomes {}).
//
// Limits (hubapi/twin.go, https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins), enforced by the registry so that every path gets
// them (REST PATCH/PUT, jobs, the devices' MQTT reported patches, bulk and seeding): key names,
// depth 10, string values 4 KB and integers ±2^52 → 400004 ArgumentInvalid; tags 8 KB and
// desired/reported 32 KB each → 403100 DeviceModelMaxPropertiesExceeded with the hub's message.
//
// Modules (modules.go): module identities and module twins under their device (bucket
// "modules", key "deviceId/moduleId"); deleting a device deletes its modules. Codes: 404010
// ModuleNotFound, 409301 ModuleAlreadyExistsOnDevice.
//
// Bulk (bulk.go): the POST /devices registry operation with per-device results; statistics.
//
// Volatile state: connectionState, connectionStateUpdatedTime and lastActivityTime change in
// memory only (SetConnectionState, RecordActivity): a million devices connecting costs no store
// transactions. Flush (called by the hub on Close) writes the devices whose state changed; Open
// marks every device Disconnected, as a restarted IoT Hub shows no sessions. The twin's
// "configurations" member (ADM statuses, SetTwinConfigurations) is volatile too.
//
// Files: registry.go (the Registry, its entries, reads), identity.go (device identities, seeding,
// connection state), twinops.go (twin reads and writes), members.go (the compact twin form and
// its merge patch), document.go (an entry as its twin document), store.go and codec.go (the
// store and its records), commit.go (group commit), modules.go, bulk.go, configurations.go.
//
// Storage: the bbolt buckets "devices" (identity record per id), "twins" (twin record per id),
// "volatile" (connection times per id, written by Flush), "modules" and "meta" (schema
// version). Records are binary (codec.go); JSON records written by
// earlier versions are still read. Writes are group-committed (commit.go): a write is
// acknowledged after the transaction that holds it has committed. At Open the whole registry is
// loaded into memory, decoding on every core.
//
// Memory: a twin is kept compact (members.go): each section is a slice of members sorted by
// key, nested objects are member slices too, and $metadata is derived from a stamp on each
// member ($lastUpdated as Unix nanoseconds, $lastUpdatedVersion) instead of being a second tree.
// Connection state lives outside the entry (volatile), so a device connecting allocates
// nothing. Entries are copy-on-write: a write builds new member slices that share untouched
// values, so queries and jobs read twins without copying or locking them, and a page cache
// may keep them. Queries read an entry through query.Object (document.go) without a map being
// built; GET /twins renders a map. Loading from the store interns keys and short values, so a
// restarted fleet shares them. Measured with BenchmarkFleetMemory (internal/hub/sim): about
// 1.2 KB of heap per simulated device of the default fleet's shape (BENCHMARKS.md).
//
// Numbers in documents are float64, as encoding/json decodes them, which is what the query
// package expects. Integers beyond ±2^53 cannot be represented; the hub's own limit is ±2^52.
//
// Errors are *huberr.Error: 404001 DeviceNotFound, 409001 DeviceAlreadyExists, 412001
// PreconditionFailed, 400004 ArgumentInvalid for bad ids, keys or patches, 403100
// DeviceModelMaxPropertiesExceeded for over-size sections, and the module and bulk codes.
//
// Benchmarks: BenchmarkConnectFleet and BenchmarkOpen (a restart; IOTPLAN_BENCH_DEVICES sets
// the fleet size, default 100,000).
package registry
