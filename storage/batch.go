package storage

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// BatchQueue is the write-behind queue of a store's archive (both
// backends): items wait at most delay for others, then a writer goroutine
// writes them together; a queue of max items is written by the caller
// that fills it; Flush writes what waits at once (a read that must see
// it), after any batch being written, so that batches land in order.
type BatchQueue[T any] struct {
	delay time.Duration
	max   int
	write func(context.Context, []T) error
	what  string // for the log line of a failed background batch

	mu      sync.Mutex
	pending []T
	kick    chan struct{} // a batch has begun waiting
	stop    chan struct{}
	stopped chan struct{}
	wmu     sync.Mutex // one batch is written at a time, in order
	closing sync.Once
}

// Start runs the writer: write gets each batch, in order; what names the
// queue in the log when a background batch fails.
func (q *BatchQueue[T]) Start(delay time.Duration, max int, what string, write func(context.Context, []T) error) {
	q.delay, q.max, q.what, q.write = delay, max, what, write
	q.kick, q.stop, q.stopped = make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(q.stopped)
		for {
			select {
			case <-q.stop:
				return
			case <-q.kick:
			}
			t := time.NewTimer(q.delay)
			select {
			case <-q.stop:
				t.Stop()
				return
			case <-t.C:
			}
			if err := q.Flush(context.Background()); err != nil {
				slog.Warn("batch not written", "queue", q.what, "err", err)
			}
		}
	}()
}

// Add queues it; the caller that fills the queue writes it, and gets that
// write's error.
func (q *BatchQueue[T]) Add(ctx context.Context, it T) error {
	q.mu.Lock()
	q.pending = append(q.pending, it)
	n := len(q.pending)
	q.mu.Unlock()
	switch {
	case n >= q.max:
		return q.Flush(ctx)
	case n == 1:
		select {
		case q.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// Flush writes what waits now.
func (q *BatchQueue[T]) Flush(ctx context.Context) error {
	q.wmu.Lock()
	defer q.wmu.Unlock()
	q.mu.Lock()
	batch := q.pending
	q.pending = nil
	q.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	return q.write(ctx, batch)
}

// Close stops the writer and writes what waits; a queue never started has
// nothing to write.
func (q *BatchQueue[T]) Close(ctx context.Context) error {
	if q.stop == nil {
		return nil
	}
	var err error
	q.closing.Do(func() {
		close(q.stop)
		<-q.stopped
		err = q.Flush(ctx)
	})
	return err
}
