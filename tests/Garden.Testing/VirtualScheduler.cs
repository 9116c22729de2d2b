using Akka.Actor;
using Akka.Configuration;
using Akka.Event;
using Akka.TestKit;

namespace Garden.Testing;

/// <summary>The ActorSystem's scheduler in actor tests: Akka's <see cref="TestScheduler"/> (time moves only when the test
/// calls <see cref="Advance"/>), which also shows the timers armed now, so a test advances the clock once the actor has
/// started the timer it means, and can assert the timer's delay. Every actor timer (Akka's <c>Timers</c>) goes through
/// the system scheduler, so this is the only clock an actor test's timers run on. Selected by
/// <see cref="ActorTest"/>'s config: <c>akka.scheduler.implementation</c>.</summary>
public sealed class VirtualScheduler : IScheduler, IAdvancedScheduler
{
    private readonly TestScheduler _inner;
    private readonly Lock _lock = new();    // the list of timers
    private readonly Lock _advance = new(); // one Advance at a time
    private readonly List<Timer> _timers = [];

    public VirtualScheduler(Config config, ILoggingAdapter log) => _inner = new TestScheduler(config, log);

    /// <summary>One scheduled message or action.</summary>
    public sealed class Timer
    {
        private readonly ICancelable? _cancelable;
        private int _deliveries;

        internal Timer(object? message, ICanTell? receiver, TimeSpan delay, TimeSpan? interval, ICancelable? cancelable, DateTimeOffset due)
        {
            // Akka's Timers wrap the actor's message in an envelope of theirs (IWrappedMessage)
            Message = message is IWrappedMessage w ? w.Message : message;
            Receiver = receiver;
            Delay = delay;
            Interval = interval;
            _cancelable = cancelable;
            Due = due;
        }

        /// <summary>The message the receiver gets (an action's timer has none).</summary>
        public object? Message { get; }

        public ICanTell? Receiver { get; }

        /// <summary>The delay it was scheduled with.</summary>
        public TimeSpan Delay { get; }

        /// <summary>The period of a periodic timer; null for a single one.</summary>
        public TimeSpan? Interval { get; }

        /// <summary>When (virtual time) it fires next.</summary>
        public DateTimeOffset Due { get; private set; }

        public int Deliveries => Volatile.Read(ref _deliveries);

        /// <summary>Will fire (not cancelled; a single timer not fired yet).</summary>
        public bool Armed => _cancelable?.IsCancellationRequested != true && (Interval is not null || Deliveries == 0);

        /// <summary>The receiver is an actor whose name starts with <paramref name="prefix"/> (a container's actor is
        /// named "handle~incarnation").</summary>
        public bool To(string prefix) => Receiver is IActorRef a && a.Path.Name.StartsWith(prefix, StringComparison.Ordinal);

        internal void Delivered(DateTimeOffset now)
        {
            Interlocked.Increment(ref _deliveries);
            if (Interval is { } i) Due = now + i; // TestScheduler schedules the next one from the advanced time
        }

        public override string ToString() => $"{Message?.GetType().Name ?? "action"} to {(Receiver as IActorRef)?.Path.Name} in {Delay}, due {Due:HH:mm:ss.fff}";
    }

    /// <summary>Moves virtual time on by <paramref name="by"/>: every timer due by then fires (in due order; a periodic
    /// one once per call), its message told to the receiver before this returns.</summary>
    public void Advance(TimeSpan by)
    {
        lock (_advance) _inner.Advance(by);
    }

    /// <summary>The timers armed now whose message is of the type named <paramref name="messageType"/> (the actors' timer
    /// messages are private to them).</summary>
    public IReadOnlyList<Timer> Armed(string messageType)
    {
        lock (_lock)
        {
            _timers.RemoveAll(t => !t.Armed);
            return _timers.Where(t => t.Message?.GetType().Name == messageType).ToList();
        }
    }

    private Timer Add(object? message, ICanTell? receiver, TimeSpan delay, TimeSpan? interval, ICancelable? cancelable)
    {
        var timer = new Timer(message, receiver, delay, interval, cancelable, _inner.Now + delay);
        lock (_lock) _timers.Add(timer);
        return timer;
    }

    /// <summary>Counts the deliveries of one timer on the way to its receiver.</summary>
    private sealed class Receiving(ICanTell inner, Timer timer, VirtualScheduler owner) : ICanTell
    {
        public void Tell(object message, IActorRef sender)
        {
            timer.Delivered(owner.Now);
            inner.Tell(message, sender);
        }
    }

    private Action Counted(Action action, Timer timer) => () =>
    {
        timer.Delivered(Now);
        action();
    };

    public void ScheduleTellOnce(TimeSpan delay, ICanTell receiver, object message, IActorRef sender) =>
        _inner.ScheduleTellOnce(delay, new Receiving(receiver, Add(message, receiver, delay, null, null), this), message, sender);

    public void ScheduleTellOnce(TimeSpan delay, ICanTell receiver, object message, IActorRef sender, ICancelable cancelable) =>
        _inner.ScheduleTellOnce(delay, new Receiving(receiver, Add(message, receiver, delay, null, cancelable), this), message, sender, cancelable);

    public void ScheduleTellRepeatedly(TimeSpan initialDelay, TimeSpan interval, ICanTell receiver, object message, IActorRef sender) =>
        _inner.ScheduleTellRepeatedly(initialDelay, interval, new Receiving(receiver, Add(message, receiver, initialDelay, interval, null), this),
            message, sender);

    public void ScheduleTellRepeatedly(TimeSpan initialDelay, TimeSpan interval, ICanTell receiver, object message, IActorRef sender,
        ICancelable cancelable) =>
        _inner.ScheduleTellRepeatedly(initialDelay, interval, new Receiving(receiver, Add(message, receiver, initialDelay, interval, cancelable), this),
            message, sender, cancelable);

    public void ScheduleOnce(TimeSpan delay, Action action, ICancelable cancelable) =>
        _inner.ScheduleOnce(delay, Counted(action, Add(null, null, delay, null, cancelable)), cancelable);

    public void ScheduleOnce(TimeSpan delay, Action action) => _inner.ScheduleOnce(delay, Counted(action, Add(null, null, delay, null, null)));

    public void ScheduleRepeatedly(TimeSpan initialDelay, TimeSpan interval, Action action, ICancelable cancelable) =>
        _inner.ScheduleRepeatedly(initialDelay, interval, Counted(action, Add(null, null, initialDelay, interval, cancelable)), cancelable);

    public void ScheduleRepeatedly(TimeSpan initialDelay, TimeSpan interval, Action action) =>
        _inner.ScheduleRepeatedly(initialDelay, interval, Counted(action, Add(null, null, initialDelay, interval, null)));

    public void ScheduleOnce(TimeSpan delay, Akka.Dispatch.IRunnable action, ICancelable cancelable) => ScheduleOnce(delay, action.Run, cancelable);

    public void ScheduleOnce(TimeSpan delay, Akka.Dispatch.IRunnable action) => ScheduleOnce(delay, action.Run);

    public void ScheduleRepeatedly(TimeSpan initialDelay, TimeSpan interval, Akka.Dispatch.IRunnable action, ICancelable cancelable) =>
        ScheduleRepeatedly(initialDelay, interval, action.Run, cancelable);

    public void ScheduleRepeatedly(TimeSpan initialDelay, TimeSpan interval, Akka.Dispatch.IRunnable action) =>
        ScheduleRepeatedly(initialDelay, interval, action.Run);

    /// <summary>Virtual time: where the last <see cref="Advance"/> left it.</summary>
    public DateTimeOffset Now => _inner.Now;

    public TimeSpan MonotonicClock => _inner.MonotonicClock;

    public TimeSpan HighResMonotonicClock => _inner.HighResMonotonicClock;

    public IAdvancedScheduler Advanced => this;
}
