using System.Text;
using Google.Protobuf;

namespace Garden.Cli;

/// <summary>Where the CLI writes: text lines or JSON objects on stdout, raw process output on stdout/stderr,
/// errors and warnings on stderr. Everything is flushed as it is written (streaming output must not lag).</summary>
internal sealed class Output
{
    private static readonly JsonFormatter Formatter = new(JsonFormatter.Settings.Default.WithFormatDefaultValues(true));

    private readonly Stream _stdout = new FdStream(1);
    private readonly Stream _stderr = new FdStream(2);
    private readonly TextWriter _out;
    private readonly TextWriter _err;

    public Output()
    {
        var utf8 = new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        _out = new StreamWriter(_stdout, utf8, 4096, leaveOpen: true) { AutoFlush = true, NewLine = "\n" };
        _err = new StreamWriter(_stderr, utf8, 1024, leaveOpen: true) { AutoFlush = true, NewLine = "\n" };
    }

    /// <summary>--json: print response messages in the protobuf JSON mapping.</summary>
    public bool Json { get; set; }

    public void Line(string text) => _out.WriteLine(text);

    public void Lines(IEnumerable<string> lines)
    {
        var sb = new StringBuilder();
        foreach (var l in lines) sb.Append(l).Append('\n');
        _out.Write(sb.ToString());
    }

    public void Message(IMessage message) => _out.WriteLine(Formatter.Format(message));

    /// <summary>JSON when --json, else the text form.</summary>
    public void Result(IMessage message, Func<string> text)
    {
        if (Json) Message(message);
        else Line(text());
    }

    public void Error(string message) => _err.WriteLine("garden: " + message);

    /// <summary>Text for stderr as it is (the usage overview after a bare `garden`).</summary>
    public void ErrorText(string text) => _err.WriteLine(text);

    public void Stdout(ReadOnlySpan<byte> data) => _stdout.Write(data);

    public void Stderr(ReadOnlySpan<byte> data) => _stderr.Write(data);
}
