package eventlog

import (
	"context"
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthdev/berth/pkg/events"
)

// Metadata keys of the messages the subscriber hands the router.
const (
	metaSubject   = "nats_subject"
	metaSequence  = "nats_stream_sequence"
	metaDelivered = "nats_num_delivered"
	metaHeader    = "nats_header_" // + header name
)

// subscriber is a watermill Subscriber over one JetStream pull consumer.
// Written here rather than taken from watermill-nats because the log needs
// what that one hides: the stream sequence and delivery count of each
// message, in-progress signals that keep long work (an archive) from being
// redelivered while its holder lives, and dropping a redelivered copy of a
// message this instance still works on.
type subscriber struct {
	cons      jetstream.Consumer
	log       *slog.Logger
	name      string
	batch     int           // messages pulled and held at once (MaxAckPending)
	keepAlive time.Duration // in-progress signal interval
	nakDelay  time.Duration // redelivery delay of a nacked message
	// redrive: the messages are admins' retries of dead letters; their
	// subject is in the Berth-Original-Subject header, and their sequence
	// (of the dead-letter stream) means nothing to the log's readers.
	redrive bool

	mu       sync.Mutex
	inFlight map[uint64]jetstream.Msg // by stream sequence
	gone     func()                   // called when the server ended the consumer
	settled  chan struct{}            // a message was settled: room in the window
	held     sync.WaitGroup           // messages taken and not settled
	// stopKeepAlive ends the in-progress signals once nothing is held.
	stopKeepAlive chan struct{}
	pulling       chan struct{} // closed when pull has returned (nil: never subscribed)
}

func newSubscriber(cons jetstream.Consumer, log *slog.Logger, o DurableOptions) *subscriber {
	return &subscriber{cons: cons, log: log, name: o.Name, batch: o.maxAckPending(), keepAlive: o.AckWait / 3,
		nakDelay: o.RetryInterval, inFlight: map[uint64]jetstream.Msg{}, gone: func() {}, settled: make(chan struct{}, 1),
		stopKeepAlive: make(chan struct{})}
}

// Subscribe starts pulling; the channel closes once ctx ends (the router
// cancels it on shutdown) or the server ends the consumer. topic is unused:
// the durable consumer's filter decides what arrives.
func (s *subscriber) Subscribe(ctx context.Context, _ string) (<-chan *message.Message, error) {
	out := make(chan *message.Message)
	go s.keepInProgress()
	s.pulling = make(chan struct{})
	go func() {
		defer close(s.pulling)
		defer close(out)
		s.pull(ctx, out)
	}()
	return out, nil
}

// pull fetches as many messages as the window has room for, each request
// bounded to a second. Explicit short fetches, rather than nats.go's
// Consume, because under a starved CPU Consume was seen to stop asking
// (no pull request waiting on the server, messages pending) for longer
// than its 30 s expiry.
func (s *subscriber) pull(ctx context.Context, out chan<- *message.Message) {
	for ctx.Err() == nil {
		room := s.batch - s.holding()
		if room <= 0 {
			select { // the window is full: wait for a settle
			case <-ctx.Done():
			case <-s.settled:
			}
			continue
		}
		if gone := s.fetch(ctx, out, room); gone {
			s.gone()
			return
		}
	}
}

// fetch asks for up to n messages for at most a second and delivers what
// comes. gone reports that the server no longer has the consumer.
func (s *subscriber) fetch(ctx context.Context, out chan<- *message.Message, n int) (gone bool) {
	fctx, cancel := context.WithTimeout(ctx, time.Second) // ends early on shutdown
	defer cancel()
	batch, err := s.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err == nil {
		for m := range batch.Messages() {
			s.deliver(ctx, out, m)
		}
		err = batch.Error()
	}
	switch {
	case err == nil, ctx.Err() != nil, errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return false // an empty second, or shutting down
	case errors.Is(err, jetstream.ErrConsumerNotFound), errors.Is(err, jetstream.ErrConsumerDeleted):
		return true
	}
	// A pull on a consumer that is gone gets no responders rather than
	// "not found": ask the server which it is.
	if _, ierr := s.cons.Info(ctx); errors.Is(ierr, jetstream.ErrConsumerNotFound) {
		return true
	}
	s.log.Warn("fetch failed; asking again", "consumer", s.name, "err", err)
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	return false
}

func (s *subscriber) holding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.inFlight)
}

// deliver hands m to the router and settles it with the router's verdict.
func (s *subscriber) deliver(ctx context.Context, out chan<- *message.Message, m jetstream.Msg) {
	md, err := m.Metadata()
	if err != nil {
		_ = m.Term() // not a JetStream message: nothing to retry
		return
	}
	seq := md.Sequence.Stream
	s.mu.Lock()
	_, dup := s.inFlight[seq]
	if !dup {
		s.inFlight[seq] = m
		s.held.Add(1) // under mu, before pull can return: wait never misses it
	}
	s.mu.Unlock()
	if dup {
		return // a redelivered copy of what a handler here still holds: it settles both
	}
	msg := message.NewMessage(strconv.FormatUint(seq, 10), m.Data())
	msg.Metadata.Set(metaSubject, m.Subject())
	msg.Metadata.Set(metaSequence, strconv.FormatUint(seq, 10))
	if s.redrive {
		msg.Metadata.Set(metaSubject, m.Headers().Get(events.OriginalSubjectHeader))
		msg.Metadata.Set(metaSequence, "0") // handled on the latest state
	}
	msg.Metadata.Set(metaDelivered, strconv.FormatUint(md.NumDelivered, 10))
	for k, v := range m.Headers() {
		if len(v) > 0 {
			msg.Metadata.Set(metaHeader+k, v[0])
		}
	}
	msg.SetContext(ctx)
	select {
	case out <- msg:
	case <-ctx.Done():
		s.settle(seq, m.Nak)
		return
	}
	go func() {
		select {
		case <-msg.Acked():
			s.settle(seq, m.Ack)
		case <-msg.Nacked():
			if ctx.Err() != nil {
				s.settle(seq, m.Nak) // stopping: another replica may take it now
				return
			}
			s.settle(seq, func() error { return m.NakWithDelay(s.nakDelay) }) // its dead letter could not be written
		}
	}()
}

// settle answers the server for seq, then forgets it: a redelivered copy
// that arrives before the answer is still recognised and dropped.
func (s *subscriber) settle(seq uint64, f func() error) {
	defer s.held.Done()
	if err := f(); err != nil {
		s.log.Debug("settling a message failed; the server redelivers it after its ack wait", "consumer", s.name, "seq", seq, "err", err)
	}
	s.mu.Lock()
	delete(s.inFlight, seq)
	s.mu.Unlock()
	select {
	case s.settled <- struct{}{}:
	default:
	}
}

// wait returns once every message this subscriber took is settled, keeping
// them alive meanwhile; the subscription must be over (its context ended).
func (s *subscriber) wait() {
	if s.pulling != nil {
		<-s.pulling // no message is taken after this
	}
	s.held.Wait()
	close(s.stopKeepAlive)
}

// keepInProgress tells the server, every interval, that each message this
// instance holds is still being worked on.
func (s *subscriber) keepInProgress() {
	t := time.NewTicker(s.keepAlive)
	defer t.Stop()
	for {
		select {
		case <-s.stopKeepAlive:
			return
		case <-t.C:
		}
		s.mu.Lock()
		msgs := make([]jetstream.Msg, 0, len(s.inFlight))
		for _, m := range s.inFlight {
			msgs = append(msgs, m)
		}
		s.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
	}
}

// Close is a no-op: the router cancels Subscribe's context to stop it.
func (s *subscriber) Close() error { return nil }
