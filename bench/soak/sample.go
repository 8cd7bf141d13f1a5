package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// sample is one reading of the server's resources.
type sample struct {
	t                                  float64 // seconds since the load started
	rssKiB, privKiB, heapKiB, allocKiB int64
	goroutines, fds                    int64
	storeKiB                           int64
	restarts                           int
}

var csvHeader = "t_s,rss_kib,private_kib,heap_inuse_kib,heap_alloc_kib,goroutines,open_fds,store_kib,restarts"

func (s sample) csv() string {
	return fmt.Sprintf("%.1f,%d,%d,%d,%d,%d,%d,%d,%d", s.t, s.rssKiB, s.privKiB, s.heapKiB, s.allocKiB, s.goroutines, s.fds, s.storeKiB, s.restarts)
}

// measure reads /proc/PID/status and smaps_rollup, /proc/PID/fd, pprof's
// goroutine and heap pages, and the store's size.
func measure(ctx context.Context, s *server) (sample, error) {
	var m sample
	pid := s.pid()
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, fmt.Errorf("soak: read status: %w", err)
	}
	m.rssKiB = procField(string(status), "VmRSS:")
	if rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		m.privKiB = procField(string(rollup), "Private_Clean:") + procField(string(rollup), "Private_Dirty:")
	} else {
		m.privKiB = procField(string(status), "RssAnon:")
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return m, fmt.Errorf("soak: read fds: %w", err)
	}
	m.fds = int64(len(fds))
	if fi, err := os.Stat(filepath.Join(s.dataDir, "adhocd.db")); err == nil {
		m.storeKiB = fi.Size() / 1024
	}
	g, err := fetch(ctx, "http://"+s.pprofAddr+"/debug/pprof/goroutine?debug=1")
	if err != nil {
		return m, err
	}
	first, _, _ := strings.Cut(g, "\n")
	m.goroutines, _ = strconv.ParseInt(strings.TrimPrefix(first, "goroutine profile: total "), 10, 64)
	h, err := fetch(ctx, "http://"+s.pprofAddr+"/debug/pprof/heap?debug=1")
	if err != nil {
		return m, err
	}
	m.heapKiB = memStat(h, "# HeapInuse = ") / 1024
	m.allocKiB = memStat(h, "# HeapAlloc = ") / 1024
	m.restarts = s.restarts
	return m, nil
}

func procField(text, key string) int64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				v, _ := strconv.ParseInt(f[0], 10, 64)
				return v
			}
		}
	}
	return 0
}

func memStat(text, key string) int64 {
	i := strings.LastIndex(text, key)
	if i < 0 {
		return 0
	}
	rest := text[i+len(key):]
	end := strings.IndexByte(rest, '\n')
	if end < 0 {
		end = len(rest)
	}
	v, _ := strconv.ParseInt(strings.TrimSpace(rest[:end]), 10, 64)
	return v
}

func fetch(ctx context.Context, url string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("soak: get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("soak: read %s: %w", url, err)
	}
	return string(b), nil
}

// series names a column of the samples for the growth check, with the
// absolute growth below which it is never a failure.
type series struct {
	name  string
	get   func(sample) float64
	floor float64
}

var growthSeries = []series{
	{"RSS (KiB)", func(s sample) float64 { return float64(s.rssKiB) }, 8 * 1024},
	{"private memory (KiB)", func(s sample) float64 { return float64(s.privKiB) }, 8 * 1024},
	{"heap in use (KiB)", func(s sample) float64 { return float64(s.heapKiB) }, 8 * 1024},
	{"goroutines", func(s sample) float64 { return float64(s.goroutines) }, 50},
	{"open files", func(s sample) float64 { return float64(s.fds) }, 20},
	{"store size (KiB)", func(s sample) float64 { return float64(s.storeKiB) }, 4 * 1024},
}

// growth applies the criterion to one series: the mean of the last third
// exceeds the middle third's by more than pct percent and by more than the
// series' floor, and the least-squares slope over the last third is
// positive. It returns a description of the failure, or "".
func growth(samples []sample, s series, pct float64) (string, float64, float64) {
	n := len(samples)
	if n < 9 {
		return "", 0, 0
	}
	mid, last := samples[n/3:2*n/3], samples[2*n/3:]
	mean := func(xs []sample) float64 {
		var sum float64
		for _, x := range xs {
			sum += s.get(x)
		}
		return sum / float64(len(xs))
	}
	mm, ml := mean(mid), mean(last)
	var st, sv, stt, stv float64
	for _, x := range last {
		st += x.t
		sv += s.get(x)
		stt += x.t * x.t
		stv += x.t * s.get(x)
	}
	k := float64(len(last))
	slope := (k*stv - st*sv) / math.Max(k*stt-st*st, 1e-9)
	if ml > mm*(1+pct/100) && ml-mm > s.floor && slope > 0 {
		return fmt.Sprintf("%s keeps growing: last third's mean %.0f is %.1f%% above the middle third's %.0f, slope %+.2f/s", s.name, ml, 100*(ml-mm)/mm, mm, slope), mm, ml
	}
	return "", mm, ml
}

// plot writes a PNG of memory and store size over time with gnuplot, or
// says why not.
func plot(csvPath, pngPath, title string) error {
	gp, err := exec.LookPath("gnuplot")
	if err != nil {
		return fmt.Errorf("gnuplot is not installed (apt-get install gnuplot-nox): no plot")
	}
	script := fmt.Sprintf(`set terminal png size 1100,550
set output %q
set datafile separator ","
set key outside bottom center horizontal
set yrange [0:*]
set y2range [0:*]
set title %q
set xlabel "seconds"
set ylabel "MiB"
set y2label "goroutines, open files"
set y2tics
set ytics nomirror
set grid
plot %q using 1:($2/1024) with lines lw 2 lc rgb "#1f77b4" title "RSS", \
     '' using 1:($3/1024) with lines lw 2 lc rgb "#2ca02c" title "private", \
     '' using 1:($4/1024) with lines lw 2 lc rgb "#d62728" title "heap in use", \
     '' using 1:($8/1024) with lines lw 2 lc rgb "#ff7f0e" title "store (adhocd.db)", \
     '' using 1:6 axes x1y2 with lines lc rgb "#7f7f7f" title "goroutines (right)", \
     '' using 1:7 axes x1y2 with lines dt 2 lc rgb "#9467bd" title "open files (right)"
`, pngPath, title, csvPath)
	cmd := exec.Command(gp)
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("gnuplot: %w: %s", err, out)
	}
	return nil
}

// readSamples is the inverse of csv, for tests and replots.
func readSamples(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "t_s") {
			continue
		}
		var s sample
		if _, err := fmt.Sscanf(sc.Text(), "%f,%d,%d,%d,%d,%d,%d,%d,%d", &s.t, &s.rssKiB, &s.privKiB, &s.heapKiB, &s.allocKiB, &s.goroutines, &s.fds, &s.storeKiB, &s.restarts); err != nil {
			return nil, fmt.Errorf("soak: parse %q: %w", sc.Text(), err)
		}
		out = append(out, s)
	}
	return out, sc.Err()
}
