// Command zdtm-workload is the multi-call binary of gocr's zdtm workloads:
//
//	zdtm-workload NAME --pidfile=F --outfile=O [--filename=P] [--name=value...]
package main

import (
	"github.com/gocr/gocr/zdtm/lib"
	"github.com/gocr/gocr/zdtm/workloads"
)

func main() { lib.Main(append(workloads.All(), workloads.Bench()...)...) }
