// Package procfs parses the /proc files the dump side of the engine reads.
//
// Every reader takes a pid (a tid works too: /proc/TID is reachable even
// though it is not listed) and returns typed values. Each has a pure parser
// beside it (ParseMaps, ParseStat, ...) taking the file's bytes, so fuzzers
// and tests can feed it fixed or hostile input; parsers return errors, never
// panic. Errors name the file and the line, and wrap the cause with %w.
package procfs
