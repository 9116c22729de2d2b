using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using Garden.Linux.IO;

namespace Garden.Linux.Images;

/// <summary>A registry (Registry HTTP API v2): the manifest by tag or digest (an index resolved to this platform), blobs by
/// digest. A 401 with a Bearer challenge is answered with an anonymous token from its realm (service and scope as the
/// challenge says) and the request is sent once more. HTTPS unless the host is in garden.registry.insecure. A registry that
/// sends nothing for <c>stall</c> (no answer, or a body that stops) fails the pull, naming it.</summary>
public sealed class RegistrySource(ImageReference reference, HttpClient http, IReadOnlyCollection<string> insecure, TimeSpan stall) : IImageSource
{
    private readonly Uri _base = reference.RegistryBase(insecure);
    private string? _token;

    public string Name => reference.ToString();

    public async Task<ResolvedImage> ResolveAsync(CancellationToken ct)
    {
        var (bytes, type, digest) = await ManifestAsync(reference.ManifestReference, ct).ConfigureAwait(false);
        if (reference.Digest.Length > 0) ImageManifests.Verify(bytes, reference.Digest, $"{Name}: manifest");
        if (ImageManifests.IsIndex(bytes, type))
        {
            var picked = ImageManifests.PickPlatform(ImageManifests.ReadIndex(bytes, $"{Name}: index"), $"{Name}: index");
            (bytes, type, digest) = await ManifestAsync(picked.Digest, ct).ConfigureAwait(false);
            ImageManifests.Verify(bytes, picked.Digest, $"{Name}: manifest {picked.Digest}");
        }
        return ImageManifests.ReadManifest(bytes, digest, $"{Name}: manifest");
    }

    private async Task<(byte[] Bytes, string? Type, string Digest)> ManifestAsync(string reference1, CancellationToken ct)
    {
        using var response = await SendAsync($"v2/{reference.Name}/manifests/{reference1}", ImageManifests.Accepted, ct).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.NotFound)
            throw new ImageException($"{Name}: {(ImageReference.IsDigest(reference1) ? "manifest " + reference1 : "tag \"" + reference1 + "\"")} not found in {reference.Name} at {reference.Host}");
        await EnsureOkAsync(response, "manifest", ct).ConfigureAwait(false);
        if (response.Content.Headers.ContentLength > OciLayoutSource.MaxDocument) throw new ImageException($"{Name}: the manifest is larger than {OciLayoutSource.MaxDocument} bytes");
        var bytes = await ReadLimitedAsync(response, ct).ConfigureAwait(false);
        return (bytes, response.Content.Headers.ContentType?.MediaType, ImageManifests.DigestOf(bytes));
    }

    public async Task<Stream> OpenBlobAsync(Descriptor blob, CancellationToken ct)
    {
        var response = await SendAsync($"v2/{reference.Name}/blobs/{blob.Digest}", [], ct).ConfigureAwait(false);
        try
        {
            if (response.StatusCode == HttpStatusCode.NotFound) throw new ImageException($"{Name}: blob {blob.Digest} not found in {reference.Name} at {reference.Host}");
            await EnsureOkAsync(response, $"blob {blob.Digest}", ct).ConfigureAwait(false);
            return new ResponseStream(await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false), response, stall);
        }
        catch
        {
            response.Dispose();
            throw;
        }
    }

    private async Task<HttpResponseMessage> SendAsync(string path, string[] accept, CancellationToken ct)
    {
        var uri = new Uri(_base, path);
        for (var attempt = 0; ; attempt++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, uri);
            foreach (var a in accept) request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue(a));
            if (_token is not null) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
            HttpResponseMessage response;
            using var answer = CancellationTokenSource.CreateLinkedTokenSource(ct);
            answer.CancelAfter(stall);
            try { response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, answer.Token).ConfigureAwait(false); }
            catch (HttpRequestException e) { throw new ImageException($"{Name}: cannot reach {_base}: {e.Message}", e); }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
            {
                throw new ImageException($"{Name}: {_base} did not answer within {stall.TotalSeconds:0.#}s", e);
            }
            if (response.StatusCode != HttpStatusCode.Unauthorized || attempt > 0) return response;
            var challenge = response.Headers.WwwAuthenticate.FirstOrDefault(h => h.Scheme.Equals("Bearer", StringComparison.OrdinalIgnoreCase));
            response.Dispose();
            if (challenge?.Parameter is not { } parameter)
                throw new ImageException($"{Name}: {reference.Host} asks for credentials (only anonymous bearer tokens are supported)");
            _token = await TokenAsync(RegistryAuth.ParseChallenge(parameter), ct).ConfigureAwait(false);
        }
    }

    private async Task<string> TokenAsync(IReadOnlyDictionary<string, string> challenge, CancellationToken ct)
    {
        var uri = RegistryAuth.TokenUri(challenge, $"repository:{reference.Name}:pull", Name);
        using var answer = CancellationTokenSource.CreateLinkedTokenSource(ct);
        answer.CancelAfter(stall);
        HttpResponseMessage response;
        try { response = await http.GetAsync(uri, answer.Token).ConfigureAwait(false); }
        catch (HttpRequestException e) { throw new ImageException($"{Name}: cannot reach the token service {uri.GetLeftPart(UriPartial.Path)}: {e.Message}", e); }
        catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
        {
            throw new ImageException($"{Name}: the token service {uri.GetLeftPart(UriPartial.Path)} did not answer within {stall.TotalSeconds:0.#}s", e);
        }
        using var _ = response;
        if (!response.IsSuccessStatusCode) throw new ImageException($"{Name}: the token service {uri.GetLeftPart(UriPartial.Path)} answered {(int)response.StatusCode} {response.ReasonPhrase}");
        var bytes = await ReadLimitedAsync(response, ct).ConfigureAwait(false);
        try
        {
            using var doc = JsonDocument.Parse(bytes);
            foreach (var name in new[] { "token", "access_token" })
                if (doc.RootElement.TryGetProperty(name, out var t) && t.GetString() is { Length: > 0 } token) return token;
        }
        catch (JsonException) { }
        throw new ImageException($"{Name}: the token service {uri.GetLeftPart(UriPartial.Path)} gave no token");
    }

    private async Task EnsureOkAsync(HttpResponseMessage response, string what, CancellationToken ct)
    {
        if (response.IsSuccessStatusCode) return;
        var body = "";
        try { body = System.Text.Encoding.UTF8.GetString(await ReadLimitedAsync(response, ct).ConfigureAwait(false)); } catch (Exception) { }
        if (body.Length > 300) body = body[..300];
        throw new ImageException($"{Name}: {what}: {reference.Host} answered {(int)response.StatusCode} {response.ReasonPhrase}{(body.Length > 0 ? ": " + body.Trim() : "")}");
    }

    private static async Task<byte[]> ReadLimitedAsync(HttpResponseMessage response, CancellationToken ct)
    {
        await using var s = await response.Content.ReadAsStreamAsync(ct).ConfigureAwait(false);
        var buffer = new MemoryStream();
        var chunk = new byte[81920];
        int n;
        while ((n = await s.ReadAsync(chunk, ct).ConfigureAwait(false)) > 0)
        {
            buffer.Write(chunk, 0, n);
            if (buffer.Length > OciLayoutSource.MaxDocument) throw new ImageException($"a registry document larger than {OciLayoutSource.MaxDocument} bytes");
        }
        return buffer.ToArray();
    }

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    /// <summary>The body of a response, disposing the response with it.</summary>
    private sealed class ResponseStream(Stream inner, HttpResponseMessage response, TimeSpan stall) : ReadOnlyStream
    {
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken ct = default)
        {
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(ct);
            idle.CancelAfter(stall);
            try { return await inner.ReadAsync(buffer, idle.Token).ConfigureAwait(false); }
            catch (OperationCanceledException e) when (!ct.IsCancellationRequested)
            {
                throw new IOException($"the registry sent nothing for {stall.TotalSeconds:0.#}s", e);
            }
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) { inner.Dispose(); response.Dispose(); }
            base.Dispose(disposing);
        }
    }
}

/// <summary>The Bearer challenge of a registry (RFC 6750 / the distribution token spec). Pure.</summary>
public static class RegistryAuth
{
    /// <summary>realm="...",service="...",scope="..." → its parameters.</summary>
    public static IReadOnlyDictionary<string, string> ParseChallenge(string parameter)
    {
        var result = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var i = 0;
        while (i < parameter.Length)
        {
            while (i < parameter.Length && (parameter[i] == ',' || parameter[i] == ' ')) i++;
            var eq = parameter.IndexOf('=', i);
            if (eq < 0) break;
            var key = parameter[i..eq].Trim();
            i = eq + 1;
            string value;
            if (i < parameter.Length && parameter[i] == '"')
            {
                var sb = new System.Text.StringBuilder();
                for (i++; i < parameter.Length && parameter[i] != '"'; i++)
                    sb.Append(parameter[i] == '\\' && i + 1 < parameter.Length ? parameter[++i] : parameter[i]);
                i++;
                value = sb.ToString();
            }
            else
            {
                var end = parameter.IndexOf(',', i);
                if (end < 0) end = parameter.Length;
                value = parameter[i..end].Trim();
                i = end;
            }
            result[key] = value;
        }
        return result;
    }

    /// <summary>The token request: realm?service=...&amp;scope=... (the challenge's scope, else <paramref name="scope"/>).
    /// A realm that is not http(s) is refused.</summary>
    public static Uri TokenUri(IReadOnlyDictionary<string, string> challenge, string scope, string name)
    {
        if (!challenge.TryGetValue("realm", out var realm) || !Uri.TryCreate(realm, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw new ImageException($"{name}: the registry's bearer challenge has no http(s) realm");
        var query = new List<string>();
        if (challenge.TryGetValue("service", out var service)) query.Add("service=" + Uri.EscapeDataString(service));
        query.Add("scope=" + Uri.EscapeDataString(challenge.TryGetValue("scope", out var s) ? s : scope));
        var b = new UriBuilder(uri);
        b.Query = (b.Query.TrimStart('?') is { Length: > 0 } q ? q + "&" : "") + string.Join('&', query);
        return b.Uri;
    }
}
