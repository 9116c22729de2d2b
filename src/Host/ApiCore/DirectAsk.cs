using Akka.Actor;

namespace Garden.Host.ApiCore;

/// <summary>
/// An Ask whose answer continues its caller on the thread that delivers it, where Akka's Ask hands every answer to a
/// pool thread first (its promise runs continuations asynchronously): on a Run, the ProcessActor's answer comes on the
/// thread that read the agent's Spawned, and the gRPC handler goes on from there to write Started, without waking a
/// sleeping pool thread in between (bench/FINDINGS-run.md). An answer told from inside an actor (a container that
/// refuses at once, say) is still handed to the pool: the caller's code never runs on an actor's thread.
/// Otherwise as Akka's Ask: a temporary actor ref registered with the provider while the answer is awaited, the
/// answer as the result when it is a <typeparamref name="T"/>, a <see cref="Status.Failure"/>'s cause as the
/// exception, <see cref="AskTimeoutException"/> after the timeout, cancelled with <paramref name="ct"/>.
/// </summary>
internal static class DirectAsk
{
    public static Task<T> Ask<T>(ActorSystem system, IActorRef target, object message, TimeSpan timeout, CancellationToken ct)
    {
        var provider = ((ExtendedActorSystem)system).Provider;
        var reply = new Reply<T>(provider, provider.TempPath());
        provider.RegisterTempActor(reply, reply.Path);
        reply.Arm(timeout, ct);
        target.Tell(message, reply);
        return reply.Task;
    }

    private sealed class Reply<T>(IActorRefProvider provider, ActorPath path) : MinimalActorRef
    {
        // continuations run where the result is set (no RunContinuationsAsynchronously): see Complete
        private readonly TaskCompletionSource<T> _result = new();
        private CancellationTokenSource? _timeout;
        private CancellationTokenRegistration _cancel;
        private int _done;

        public Task<T> Task => _result.Task;

        public override IActorRefProvider Provider => provider;

        public override ActorPath Path => path;

        public void Arm(TimeSpan timeout, CancellationToken ct)
        {
            if (timeout > TimeSpan.Zero && timeout != Timeout.InfiniteTimeSpan)
            {
                _timeout = new CancellationTokenSource();
                _timeout.Token.Register(r => ((Reply<T>)r!).Finish(() =>
                    ((Reply<T>)r!)._result.TrySetException(new AskTimeoutException($"Timeout after {timeout} seconds"))), this);
                _timeout.CancelAfter(timeout);
            }
            if (ct.CanBeCanceled) _cancel = ct.Register(static r => ((Reply<T>)r!).Finish(() => ((Reply<T>)r!)._result.TrySetCanceled()), this);
        }

        protected override void TellInternal(object message, IActorRef sender)
        {
            if (Akka.Actor.Internal.InternalCurrentActorCellKeeper.Current is not null)
            {
                // told from inside an actor: the caller goes on on the pool, as with Akka's Ask
                ThreadPool.UnsafeQueueUserWorkItem(static s => s.Reply.Complete(s.Message), (Reply: this, Message: message), preferLocal: false);
                return;
            }
            Complete(message);
        }

        private void Complete(object message) => Finish(() =>
        {
            switch (message)
            {
                case T answer:
                    _result.TrySetResult(answer);
                    break;
                case Status.Failure f:
                    _result.TrySetException(f.Cause ?? new TaskCanceledException("Task cancelled by actor via Failure message."));
                    break;
                default:
                    _result.TrySetException(new ArgumentException(
                        $"Received message of type [{message?.GetType().ToString() ?? "null"}] - Ask expected message of type [{typeof(T)}]"));
                    break;
            }
        });

        /// <summary>Once: unregisters the temporary ref and lets the timer and the registration go, then sets the result
        /// (whose continuations may run right here).</summary>
        private void Finish(Action set)
        {
            if (Interlocked.Exchange(ref _done, 1) != 0) return;
            provider.UnregisterTempActor(path);
            _timeout?.Dispose();
            _cancel.Dispose();
            set();
        }
    }
}
