using Garden.Cli.Args;
using Garden.Protocol.Api;
using Google.Protobuf;

namespace Garden.Cli.Commands;

/// <summary>stream-in, stream-out: tar archives between garden's stdin/stdout and the container, streamed in pieces.</summary>
internal static class FileCommands
{
    private const int ChunkBytes = 256 * 1024;

    public static async Task<int> StreamInAsync(CliContext ctx, StreamInCommand cmd)
    {
        using var call = ctx.Client.StreamIn();
        await call.RequestStream.WriteAsync(new StreamInRequest { Handle = cmd.Handle, Path = cmd.Dest, User = cmd.User ?? "" });
        var buffer = new byte[ChunkBytes];
        try
        {
            int n;
            while ((n = Terminal.ReadStdin(buffer)) > 0)
                await call.RequestStream.WriteAsync(new StreamInRequest
                {
                    Data = Protocol.Client.GardenClient.StreamPiece(buffer, n, serializesOnWrite: !ctx.Address.IsAkka),
                });
            await call.RequestStream.CompleteAsync();
        }
        catch (Exception e) when (e is Grpc.Core.RpcException or InvalidOperationException)
        {
            // the daemon already answered (a bad archive fails before the last byte): its answer says why
        }
        await call.ResponseAsync;
        return 0;
    }

    public static async Task<int> StreamOutAsync(CliContext ctx, StreamOutCommand cmd)
    {
        using var call = ctx.Client.StreamOut(new StreamOutRequest { Handle = cmd.Handle, Path = cmd.Path, User = cmd.User ?? "" });
        while (await call.ResponseStream.MoveNext(CancellationToken.None))
            ctx.Output.Stdout(call.ResponseStream.Current.Data.Span);
        return 0;
    }
}
