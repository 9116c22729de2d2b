using System.Runtime.InteropServices;
using Garden.Linux.Host;
using Xunit;

namespace Garden.Linux.Tests;

/// <summary>glibc keeps what was freed in the middle of an arena resident; a trim gives it back to the kernel.</summary>
public sealed class NativeHeapTests
{
    private static long RssKb() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]);

    [Fact]
    public void Memory_freed_in_the_middle_of_the_heap_stays_resident_until_a_trim_gives_it_back()
    {
        // on one thread of our own, so the blocks share one arena; 64 KiB each, below glibc's mmap threshold (they come
        // from the arena, not from mmaps of their own); the last one stays allocated, so the freed ones are not at the top
        const int block = 64 << 10, count = 1024; // 64 MiB
        long before = 0, freed = 0, trimmed = 0;
        var keep = IntPtr.Zero;
        var t = new Thread(() =>
        {
            var blocks = new IntPtr[count];
            for (var i = 0; i < count; i++)
            {
                blocks[i] = Marshal.AllocHGlobal(block);
                for (var off = 0; off < block; off += 4096) Marshal.WriteByte(blocks[i], off, 1);
            }
            keep = Marshal.AllocHGlobal(block);
            before = RssKb();
            foreach (var b in blocks) Marshal.FreeHGlobal(b);
            freed = RssKb();
            Assert.True(new GlibcHeap().Trim(), "nothing was trimmed");
            trimmed = RssKb();
        });
        t.Start();
        t.Join();
        Marshal.FreeHGlobal(keep);
        Assert.True(before - freed < 16 << 10, $"free alone gave back {before - freed} KiB: the test does not show what it should");
        Assert.True(freed - trimmed > 48 << 10, $"the trim gave back only {freed - trimmed} KiB of 64 MiB freed");
    }
}
