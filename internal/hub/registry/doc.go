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
// Storage: the bbolt buckets "devices" (identity JSON per id), "twins" (twin state JSON per id),
// "modules" and "meta" (schema version). Every write is one bbolt transaction. At Open the whole registry
// is loaded into memory; each twin is kept as an immutable rendered document (copy-on-write:
// an update builds a new document that shares untouched subtrees with the old one), so queries
// and jobs read documents without copying or locking them, and a page cache may keep
// references to them safely.
//
// Memory: a published entry keeps each section's values once (inside the document), and
// metadata leaf nodes written by the same operation share one map. Measured: ~5 KB of heap per
// twin with two tags, two desired and three reported properties (100k twins ≈ 0.5 GiB, so 1M ≈
// 5 GiB). Further savings, if needed: intern equal value subtrees across twins (they are
// immutable), or a compact non-map document representation behind ForEachTwin.
//
// Numbers in documents are float64, as encoding/json decodes them, which is what the query
// package expects. Integers beyond ±2^53 cannot be represented; the hub's own limit is ±2^52.
//
// Errors are *huberr.Error: 404001 DeviceNotFound, 409001 DeviceAlreadyExists, 412001
// PreconditionFailed, 400004 ArgumentInvalid for bad ids, keys or patches, 403100
// DeviceModelMaxPropertiesExceeded for over-size sections, and the module and bulk codes.
//
// Benchmark: BenchmarkConnectFleet (IOTPLAN_BENCH_DEVICES sets the fleet size, default 100,000).
//
// Imports: bbolt, hubapi, huberr, stdlib.
package registry
